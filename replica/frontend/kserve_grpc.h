#pragma once

// The KServe v2 / Open Inference Protocol gRPC codec: ModelInferRequest to InferRequest, and
// results and metadata to their response messages. The gRPC counterpart of kserve_json.
//
// Tensor elements arrive either typed (`contents.<type>_contents`) or as `raw_input_contents`
// (little-endian row-major bytes, one entry per input), never both in one request. Replies
// mirror the request: raw_output_contents when the request used raw inputs, typed contents
// otherwise, so a client gets back the form it chose (Triton's client sends raw and reads raw;
// hand-written clients that fill fp32_contents read fp32_contents).
#include "common/status.h"
#include "proto/grpc_service.pb.h"
#include "replica/runtime/model.h"
#include "replica/types/tensor.h"

namespace serve {

enum class TensorEncoding { kTyped, kRaw };

// InvalidArgument naming the input and the rule for anything malformed: unsupported datatype,
// element count not matching the shape, raw and typed contents mixed, a typed value out of
// range for a narrow integer type. The model's own expectations are checked later
// (Model::validate).
StatusOr<InferRequest> decodeModelInferRequest(const inference::ModelInferRequest& request);

// How a request carried its tensors: kRaw when raw_input_contents was used.
TensorEncoding requestEncoding(const inference::ModelInferRequest& request);

inference::ModelInferResponse encodeModelInferResponse(const InferResponse& response,
                                                       TensorEncoding encoding);
inference::ModelMetadataResponse encodeModelMetadata(const ModelMetadata& metadata);

}  // namespace serve
