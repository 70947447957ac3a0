// KServe v2 infer bodies as a client sends them over HTTP: all JSON, or JSON followed by binary
// tensor data (Inference-Header-Content-Length). The first input byte chooses which: even, no
// header; odd, a JSON length that the second byte places inside (or just past) the rest.
#include <cstdlib>
#include <optional>
#include <string_view>

#include "fuzz/fuzz_target.h"
#include "replica/frontend/kserve_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::optional<size_t> json_length;
  std::string_view body = serve::fuzz::asText(data + 2, size - 2);
  if (data[0] % 2 == 1) json_length = body.size() * data[1] / 250;  // may exceed the body
  auto parsed = serve::parseInferBody(body, json_length);
  if (!parsed.ok()) return 0;
  // What the parser accepts is what the models rely on: every tensor's bytes match its shape.
  for (const auto& tensor : parsed->request.inputs) {
    const int64_t count = tensor.elementCount();
    if (count < 0 ||
        tensor.data.size() != static_cast<size_t>(count) * serve::dataTypeSize(tensor.datatype)) {
      std::abort();
    }
  }
  return 0;
}
