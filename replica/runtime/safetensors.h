#pragma once

// Reads safetensors files: an 8-byte little-endian header length N, N bytes of JSON describing
// each tensor ({"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}}, plus an
// optional "__metadata__" object of string values), then the raw little-endian tensor bytes.
// Every offset and size is checked against the file before any tensor is touched: the header
// must fit the file, each tensor's byte range must lie inside the data section, match
// dtype size × element count, and not overlap another tensor.
#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace serve {

struct SafetensorsTensor {
  std::string name;
  std::string dtype;  // "F32", "F16", "I64", ... as written in the file
  std::vector<int64_t> shape;
  size_t begin = 0;  // byte range inside the data section
  size_t end = 0;
};

class SafetensorsFile {
 public:
  // Reads and validates the whole file. Errors name the file and, where one is at fault, the
  // tensor: "<path>: tensor 'layers.0.weight': data_offsets [0, 400) exceed the data section
  // (256 bytes)".
  static StatusOr<SafetensorsFile> open(const std::string& path);
  // The same over bytes already in memory; `source` names them in messages.
  static StatusOr<SafetensorsFile> parse(std::string bytes, const std::string& source);

  const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& source() const { return source_; }

  // The tensor's bytes (validated ranges only).
  std::span<const std::byte> bytes(const SafetensorsTensor& tensor) const;

  // The named tensor as floats: it must exist, be F32 and hold only finite values; errors name
  // the tensor and the problem ("tensor 'layers.1.bias': element 3 is NaN").
  StatusOr<std::vector<float>> floats(const std::string& name) const;

 private:
  std::string source_;
  std::string bytes_;      // the whole file
  size_t data_start_ = 0;  // 8 + header length
  std::map<std::string, SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace serve
