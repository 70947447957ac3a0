#pragma once

// The KServe v2 / Open Inference Protocol JSON codec: request bodies to InferRequest, results
// to response bodies. Tensor data may be flat or nested row-major arrays; the element count must
// match the shape. BYTES tensors are not supported (the built-in and MLP models take numbers).
#include <string>
#include <string_view>

#include "common/status.h"
#include "replica/core/tensor.h"
#include "replica/runtime/model.h"

namespace serve {

// InvalidArgument with a message naming the offending field for anything malformed.
StatusOr<InferRequest> parseInferRequest(std::string_view body);

std::string inferResponseJson(const InferResponse& response);
std::string modelMetadataJson(const ModelMetadata& metadata);
// {"error":"<message>"}, the protocol's error body.
std::string errorJson(std::string_view message);

}  // namespace serve
