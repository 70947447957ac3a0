#pragma once

// The one entry point every fuzz target in this directory defines, as libFuzzer expects it. The
// same sources build two ways (fuzz/CMakeLists.txt): with clang's -fsanitize=fuzzer, a libFuzzer
// binary that mutates inputs; otherwise linked with replay_main.cc, a plain program that runs the
// target once on each file of its seed corpus, which is how every build, GCC included, keeps the
// corpus (and the crashes that were added to it) as regression tests.
#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace serve::fuzz {

inline std::string_view asText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace serve::fuzz
