#pragma once

// The KServe v2 / Open Inference Protocol JSON codec: request bodies to InferRequest, results
// to response bodies, with the binary tensor data extension. JSON tensor data may be flat or
// nested row-major arrays; the element count must match the shape. BYTES tensors are not supported
// (the built-in and MLP models take numbers).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "replica/runtime/model.h"
#include "replica/types/tensor.h"

namespace serve {

// The KServe v2 binary tensor data extension (also Triton's): with the HTTP header
// Inference-Header-Content-Length: N, the body's first N bytes are the JSON and the rest is raw
// tensor data, little-endian and row-major, for each input that carries
// "parameters": {"binary_data_size": bytes} instead of "data", in the order of "inputs".
// Outputs come back the same way when the request says "parameters": {"binary_data_output":
// true} (all outputs) or "outputs": [{"name": ..., "parameters": {"binary_data": true}}].
inline constexpr std::string_view kInferHeaderLengthHeader = "Inference-Header-Content-Length";

// How the response should carry each output.
struct ResponseEncoding {
  bool all_binary = false;                  // "parameters": {"binary_data_output": true}
  std::vector<std::string> binary_outputs;  // outputs named with "binary_data": true
  // Named outputs' explicit "binary_data": false, which overrides all_binary.
  std::vector<std::string> json_outputs;

  bool binary(std::string_view output) const;
};

struct ParsedInferBody {
  InferRequest request;
  ResponseEncoding encoding;
};

// Parses an infer body. `json_length` is the Inference-Header-Content-Length value (nullopt: no
// header, the whole body is JSON). InvalidArgument with a message naming the offending field,
// header or byte count for anything malformed.
StatusOr<ParsedInferBody> parseInferBody(std::string_view body, std::optional<size_t> json_length);
// The same for an all-JSON body, the encoding dropped.
StatusOr<InferRequest> parseInferRequest(std::string_view body);

// The response body; `json_length` is set when binary output data follows the JSON (and is
// what the Inference-Header-Content-Length response header must say).
struct EncodedResponse {
  std::string body;
  std::optional<size_t> json_length;
};
EncodedResponse encodeInferResponse(const InferResponse& response,
                                    const ResponseEncoding& encoding);
// All outputs as JSON numbers.
std::string inferResponseJson(const InferResponse& response);
std::string modelMetadataJson(const ModelMetadata& metadata);
// {"error":"<message>"}, the protocol's error body.
std::string errorJson(std::string_view message);

}  // namespace serve
