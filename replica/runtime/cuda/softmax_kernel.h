#pragma once

// The one hand-written kernel of the CUDA MLP back end, behind a plain C++ launcher so that
// mlp_cuda.cc is compiled by the host compiler and only this file's .cu goes through nvcc.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace serve {

// Replaces each of the `rows` rows of `y` (row-major, `cols` floats per row, device memory)
// by its softmax, shifted by the row's maximum so that exp() cannot overflow. Enqueued on
// `stream`; returns the launch error, if any. `rows` must fit a grid (at most 2^31 − 1).
cudaError_t launchSoftmaxRows(float* y, int64_t rows, int64_t cols, cudaStream_t stream);

}  // namespace serve
