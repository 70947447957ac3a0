// The serve config (YAML) parser and validator, as `start` and `deploy` run it on an operator's
// file. Any input must end in a config or in an error whose message names the file.
#include <cstdlib>
#include <string>

#include "common/serve_config.h"
#include "fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(serve::fuzz::asText(data, size));
  auto config = serve::parseServeConfig(text, "fuzz.yaml");
  if (!config.ok() && config.status().message().find("fuzz.yaml") == std::string::npos) {
    std::abort();  // every refusal must name the file it refuses
  }
  return 0;
}
