// KServe v2 gRPC ModelInferRequest messages: any bytes that protobuf parses as the message, typed
// contents or raw_input_contents, through the decoder the replica's gRPC front end uses.
#include <cstdlib>

#include "fuzz/fuzz_target.h"
#include "proto/grpc_service.pb.h"
#include "replica/frontend/kserve_grpc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  inference::ModelInferRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  auto decoded = serve::decodeModelInferRequest(request);
  if (!decoded.ok()) return 0;
  for (const auto& tensor : decoded->inputs) {
    const int64_t count = tensor.elementCount();
    if (count < 0 ||
        tensor.data.size() != static_cast<size_t>(count) * serve::dataTypeSize(tensor.datatype)) {
      std::abort();
    }
  }
  return 0;
}
