#pragma once

// Builds safetensors files in memory for tests: the 8-byte little-endian header length, the JSON
// header, then the tensor bytes. The structured form lays tensors out back to back in the order
// given; the raw form takes any header text, so tests can write malformed files too.
#include <cstdint>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace serve::testing {

struct TestTensor {
  std::string name;
  std::string dtype;  // written verbatim, so unsupported dtypes can be tested too
  std::vector<int64_t> shape;
  std::string bytes;  // raw little-endian element bytes
};

// An F32 tensor holding `values` (the host is little-endian, as the reader asserts).
inline TestTensor f32Tensor(std::string name, std::vector<int64_t> shape,
                            const std::vector<float>& values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  if (!values.empty()) {
    std::memcpy(bytes.data(), values.data(), bytes.size());
  }
  return TestTensor{std::move(name), "F32", std::move(shape), std::move(bytes)};
}

// The length prefix and `header` exactly as given, then `data`.
inline std::string makeSafetensors(const std::string& header, const std::string& data) {
  std::string out;
  uint64_t length = header.size();
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  }
  return out + header + data;
}

// A well-formed file: offsets computed from each tensor's byte size, the header padded with
// spaces to a multiple of 8 bytes as the reference writer does.
inline std::string makeSafetensors(const std::vector<TestTensor>& tensors,
                                   const std::map<std::string, std::string>& metadata = {}) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const TestTensor& tensor : tensors) {
    header[tensor.name] = {{"dtype", tensor.dtype},
                           {"shape", tensor.shape},
                           {"data_offsets", {data.size(), data.size() + tensor.bytes.size()}}};
    data += tensor.bytes;
  }
  if (!metadata.empty()) {
    header["__metadata__"] = metadata;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return makeSafetensors(text, data);
}

}  // namespace serve::testing
