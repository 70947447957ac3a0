#pragma once

// The CPU back end for MLP models: one forward pass over a whole batch, the matrix products
// done by OpenBLAS (sgemm), bias, ReLU and softmax in plain loops over the product.
#include <memory>
#include <string>
#include <vector>

#include "replica/runtime/mlp_weights.h"
#include "replica/runtime/model.h"

namespace serve {

class CpuMlpModel : public Model {
 public:
  // `threads` bounds OpenBLAS's threads (the deployment's num_cpus / OMP_NUM_THREADS). OpenBLAS
  // keeps one process-wide setting, which is fine: a replica serves one model.
  CpuMlpModel(MlpWeights weights, const std::string& name, int threads);

  const ModelMetadata& metadata() const override { return metadata_; }
  Status validate(const InferRequest& request) const override;
  std::vector<StatusOr<InferResponse>> run(std::span<const InferRequest* const> batch) override;

  // The forward pass alone, for tests and in-process benchmarks: `rows` samples of
  // inputs() floats each in `x`, outputs() floats per sample into `y`.
  void forward(const float* x, int64_t rows, std::vector<float>& y);

  int64_t inputs() const { return weights_.inputs(); }
  int64_t outputs() const { return weights_.outputs(); }

 private:
  MlpWeights weights_;
  ModelMetadata metadata_;
  // Scratch for activations, reused across passes; run() is never called concurrently
  // (maxConcurrentPasses() is 1).
  std::vector<float> input_;
  std::vector<float> a_;
  std::vector<float> b_;
};

}  // namespace serve
