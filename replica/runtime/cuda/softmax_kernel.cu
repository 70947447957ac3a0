#include <cuda_runtime.h>

#include <cmath>

#include "replica/runtime/cuda/softmax_kernel.h"

namespace serve {
namespace {

constexpr int kWarp = 32;
constexpr int kMaxThreads = 256;

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};

// Reduces `v` over the block and hands every thread the result. The block size must be a
// multiple of the warp size (all lanes take part in the shuffles) and at most 32 warps.
// Each instantiation has its own shared slots; a second call of the same instantiation is
// safe because every thread passes the first __syncthreads() below only after it has read
// the previous result.
template <typename Op>
__device__ float blockReduce(float v, Op op, float identity) {
  __shared__ float partial[kWarp];
  __shared__ float result;
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  }
  if (lane == 0) {
    partial[warp] = v;
  }
  __syncthreads();
  if (warp == 0) {
    const int warps = static_cast<int>(blockDim.x) / kWarp;
    v = lane < warps ? partial[lane] : identity;
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
    }
    if (lane == 0) {
      result = v;
    }
  }
  __syncthreads();
  return result;
}

// One block per row: max, then exp(x − max) stored in place while summing, then scale.
__global__ void softmaxRowsKernel(float* y, int64_t cols) {
  float* row = y + static_cast<int64_t>(blockIdx.x) * cols;
  float local_max = -INFINITY;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    local_max = fmaxf(local_max, row[c]);
  }
  const float max = blockReduce(local_max, MaxOp{}, -INFINITY);
  float local_sum = 0.0f;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float e = expf(row[c] - max);
    row[c] = e;
    local_sum += e;
  }
  const float inv = 1.0f / blockReduce(local_sum, SumOp{}, 0.0f);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    row[c] *= inv;
  }
}

}  // namespace

cudaError_t launchSoftmaxRows(float* y, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) {
    return cudaSuccess;
  }
  if (rows > 0x7fffffff) {
    return cudaErrorInvalidConfiguration;
  }
  // A warp for narrow rows (10 classes), up to 8 warps for wide ones.
  const int64_t warps = (cols + kWarp - 1) / kWarp;
  const int threads = static_cast<int>(warps * kWarp < kMaxThreads ? warps * kWarp : kMaxThreads);
  softmaxRowsKernel<<<static_cast<unsigned>(rows), threads, 0, stream>>>(y, cols);
  return cudaGetLastError();
}

}  // namespace serve
