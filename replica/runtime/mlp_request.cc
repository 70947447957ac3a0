#include "replica/runtime/mlp_request.h"

#include <cstring>

namespace serve {
std::string shapeText(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    out += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  }
  return out + "]";
}

ModelMetadata mlpMetadata(const MlpWeights& weights, const std::string& name,
                          const std::string& backend) {
  ModelMetadata m;
  m.name = name;
  m.platform = "serve-mlp";
  m.backend = backend;
  m.versions = {"1"};
  m.inputs = {{weights.input_name, DataType::kFp32, {-1, weights.inputs()}}};
  m.outputs = {{weights.output_name, DataType::kFp32, {-1, weights.outputs()}}};
  return m;
}

InferResponse mlpResponse(const ModelMetadata& metadata, const InferRequest& request,
                          const float* y, int64_t rows, int64_t cols) {
  Tensor out;
  out.name = metadata.outputs.front().name;
  out.datatype = DataType::kFp32;
  out.shape = {rows, cols};
  out.data.resize(static_cast<size_t>(rows * cols) * sizeof(float));
  if (!out.data.empty()) {  // zero rows: no buffer on either side
    std::memcpy(out.data.data(), y, out.data.size());
  }
  InferResponse resp;
  resp.id = request.id;
  resp.model = metadata.name;
  resp.outputs.push_back(std::move(out));
  return resp;
}

Status validateMlpRequest(const ModelMetadata& metadata, const InferRequest& request) {
  const TensorSpec& input = metadata.inputs.front();
  const std::string& output = metadata.outputs.front().name;
  const int64_t width = input.shape.back();
  const std::string expected = "FP32 with shape [-1, " + std::to_string(width) + "]";
  if (request.inputs.size() != 1) {
    return absl::InvalidArgumentError("model '" + metadata.name + "' takes one input, '" +
                                      input.name + "' (" + expected + "); got " +
                                      std::to_string(request.inputs.size()));
  }
  const Tensor& in = request.inputs.front();
  if (in.name != input.name) {
    return absl::InvalidArgumentError("unknown input '" + in.name + "': model '" + metadata.name +
                                      "' takes '" + input.name + "' (" + expected + ")");
  }
  if (in.datatype != DataType::kFp32 || in.shape.size() != 2 || in.shape[1] != width ||
      in.shape[0] < 1) {
    return absl::InvalidArgumentError("input '" + in.name + "': expected " + expected + ", got " +
                                      std::string(dataTypeName(in.datatype)) + " " +
                                      shapeText(in.shape));
  }
  for (const std::string& out : request.requested_outputs) {
    if (out != output) {
      return absl::InvalidArgumentError("unknown output '" + out + "': model '" + metadata.name +
                                        "' has '" + output + "'");
    }
  }
  return absl::OkStatus();
}

}  // namespace serve
