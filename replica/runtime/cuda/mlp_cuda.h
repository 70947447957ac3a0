#pragma once

// The CUDA back end for MLP models: the weights live on one device from create() on; a forward
// pass is one host-to-device copy of the stacked inputs, one cuBLASLt matmul per layer with
// bias (and ReLU for hidden layers) fused into its epilogue, a softmax kernel, and one
// device-to-host copy of the outputs.
//
// This header names no CUDA type (the state sits behind a pointer to an incomplete Impl), so
// the model factory and tests include it from plain C++ files compiled without nvcc.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "replica/runtime/mlp_weights.h"
#include "replica/runtime/model.h"

namespace serve {

// How many CUDA devices this process sees; 0 on any error, including no driver at all.
int visibleCudaDevices();

// The device's marketing name ("NVIDIA H100 80GB HBM3"); empty when it cannot be read.
std::string cudaDeviceName(int device);

class CudaMlpModel : public Model {
 public:
  // Uploads the weights to `device` and sizes the batch buffers for `max_batch_rows` rows (they
  // grow when a larger batch arrives). Fails, naming the CUDA or cuBLAS call, when the device
  // is not visible or memory runs out.
  static StatusOr<std::unique_ptr<CudaMlpModel>> create(MlpWeights weights, const std::string& name,
                                                        int device, int max_batch_rows);
  ~CudaMlpModel() override;

  CudaMlpModel(const CudaMlpModel&) = delete;
  CudaMlpModel& operator=(const CudaMlpModel&) = delete;

  const ModelMetadata& metadata() const override { return metadata_; }
  Status validate(const InferRequest& request) const override;
  // One stream and one set of buffers: passes must not overlap.
  int maxConcurrentPasses() const override { return 1; }
  std::vector<StatusOr<InferResponse>> run(std::span<const InferRequest* const> batch) override;

  // The forward pass alone, for tests and in-process benchmarks: `rows` samples of inputs()
  // floats each in `x`, outputs() floats per sample into `y`.
  Status forward(const float* x, int64_t rows, std::vector<float>& y);

  int64_t inputs() const { return inputs_; }
  int64_t outputs() const { return outputs_; }
  // Rows the device and staging buffers currently hold; grows, never shrinks.
  int64_t capacityRows() const;

 private:
  struct Impl;

  CudaMlpModel(MlpWeights weights, const std::string& name, std::unique_ptr<Impl> impl);

  // The pass over the `rows` rows already staged in the pinned input buffer; leaves the
  // outputs in the pinned output buffer.
  Status runStaged(int64_t rows);

  // Only the tensor names, the widths and the softmax flag are kept on the host; the weight
  // and bias values are dropped once uploaded.
  MlpWeights weights_;
  int64_t inputs_ = 0;
  int64_t outputs_ = 0;
  ModelMetadata metadata_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace serve
