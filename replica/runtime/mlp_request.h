#pragma once

// What every MLP back end shares about requests: the KServe metadata of an MLP and the check of
// a request against it (one FP32 input of shape [-1, inputs], the one output).
#include <string>

#include "common/status.h"
#include "replica/runtime/mlp_weights.h"
#include "replica/runtime/model.h"

namespace serve {

// "[1, 64]": a shape as MLP error messages print it.
std::string shapeText(const std::vector<int64_t>& shape);

ModelMetadata mlpMetadata(const MlpWeights& weights, const std::string& name,
                          const std::string& backend);

// InvalidArgument naming the expected input and shape, e.g. "input 'input': expected FP32 with
// shape [-1, 64], got FP32 [1, 63]".
Status validateMlpRequest(const ModelMetadata& metadata, const InferRequest& request);

// The answer to one request whose `rows` output rows start at `y` (row-major, `cols` floats
// each): one FP32 tensor named after the model's output, shape [rows, cols].
InferResponse mlpResponse(const ModelMetadata& metadata, const InferRequest& request,
                          const float* y, int64_t rows, int64_t cols);

}  // namespace serve
