#include "replica/runtime/mlp_cpu.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "replica/runtime/mlp_request.h"

namespace serve {
namespace {

void softmaxRows(float* y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = y + r * cols;
    float max = *std::max_element(row, row + cols);
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) {
      row[c] = std::exp(row[c] - max);  // shifted by the max: no overflow
      sum += row[c];
    }
    auto inv = static_cast<float>(1.0 / sum);
    for (int64_t c = 0; c < cols; ++c) {
      row[c] *= inv;
    }
  }
}

}  // namespace

CpuMlpModel::CpuMlpModel(MlpWeights weights, const std::string& name, int threads)
    : weights_(std::move(weights)) {
  openblas_set_num_threads(std::max(1, threads));
  metadata_ = mlpMetadata(weights_, name, "cpu");
}

Status CpuMlpModel::validate(const InferRequest& request) const {
  return validateMlpRequest(metadata_, request);
}

void CpuMlpModel::forward(const float* x, int64_t rows, std::vector<float>& y) {
  const float* src = x;
  for (size_t l = 0; l < weights_.layers.size(); ++l) {
    const DenseLayer& layer = weights_.layers[l];
    bool last = l + 1 == weights_.layers.size();
    std::vector<float>& dst = last ? y : (l % 2 == 0 ? a_ : b_);
    dst.resize(static_cast<size_t>(rows * layer.out));
    // dst[rows, out] = src[rows, in] · weightᵀ; weight is stored [out, in].
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
                static_cast<int>(layer.out), static_cast<int>(layer.in), 1.0f, src,
                static_cast<int>(layer.in), layer.weight.data(), static_cast<int>(layer.in), 0.0f,
                dst.data(), static_cast<int>(layer.out));
    for (int64_t r = 0; r < rows; ++r) {
      float* row = dst.data() + r * layer.out;
      for (int64_t c = 0; c < layer.out; ++c) {
        float v = row[c] + layer.bias[static_cast<size_t>(c)];
        row[c] = last ? v : std::max(v, 0.0f);
      }
    }
    src = dst.data();
  }
  if (weights_.softmax) {
    softmaxRows(y.data(), rows, outputs());
  }
}

std::vector<StatusOr<InferResponse>> CpuMlpModel::run(std::span<const InferRequest* const> batch) {
  // Requests are stacked row-wise into one matrix so the whole batch is one sgemm per layer.
  int64_t rows = 0;
  for (const InferRequest* req : batch) {
    rows += req->inputs.front().shape[0];
  }
  input_.resize(static_cast<size_t>(rows * inputs()));
  size_t offset = 0;
  for (const InferRequest* req : batch) {
    const Tensor& in = req->inputs.front();
    if (!in.data.empty()) {  // a request of zero rows has no buffer to copy from
      std::memcpy(input_.data() + offset, in.data.data(), in.data.size());
    }
    offset += in.data.size() / sizeof(float);
  }
  std::vector<float> y;
  forward(input_.data(), rows, y);

  std::vector<StatusOr<InferResponse>> results;
  results.reserve(batch.size());
  int64_t row = 0;
  for (const InferRequest* req : batch) {
    int64_t n = req->inputs.front().shape[0];
    results.emplace_back(mlpResponse(metadata_, *req, y.data() + row * outputs(), n, outputs()));
    row += n;
  }
  return results;
}

}  // namespace serve
