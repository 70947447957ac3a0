// safetensors files as `kind: mlp` loads them from a deployment's model path: the header length,
// the JSON header, the tensors' ranges, and the MLP loader on top.
#include <cstdlib>
#include <string>

#include "fuzz/fuzz_target.h"
#include "replica/runtime/mlp_weights.h"
#include "replica/runtime/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = serve::SafetensorsFile::parse(std::string(serve::fuzz::asText(data, size)),
                                            "fuzz.safetensors");
  if (!file.ok()) return 0;
  for (const auto& [name, tensor] : file->tensors()) {
    if (tensor.end < tensor.begin || file->bytes(tensor).size() != tensor.end - tensor.begin) {
      std::abort();
    }
    (void)file->floats(name);
  }
  (void)serve::loadMlpWeights(*file);
  return 0;
}
