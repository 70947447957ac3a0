#pragma once

// Reads safetensors files: an 8-byte little-endian header length N, N bytes of JSON describing
// each tensor ({"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}}, plus an
// optional "__metadata__" object of string values), then the raw little-endian tensor bytes.
// Every offset and size is checked against the file before any tensor is touched: the header
// must fit the file (and be at most 100,000,000 bytes, the reference implementation's limit),
// each tensor's byte range must lie inside the data section, match dtype size × element count,
// and not overlap another tensor.
#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/mapped_file.h"
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
  // Maps the file read-only and validates its header; tensor bytes are read from the file only
  // when touched, so a file's size costs address space, never a copy. Errors name the file and,
  // where one is at fault, the tensor: "<path>: tensor 'layers.0.weight': data_offsets [0, 400)
  // exceed the data section (256 bytes)"; a file that cannot be mapped (an address-space limit)
  // is "<path>: cannot map the safetensors file (N bytes): Cannot allocate memory". The file
  // must stay as it is while this object lives: a mapped file that shrinks faults on access.
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
  // Validates `all` (the whole file) and fills in the tensors and metadata.
  Status index(std::string_view all);
  // The whole file: the mapping when open() made this, else the bytes parse() was given. Not a
  // stored view, because moving a short std::string moves its bytes.
  std::string_view all() const { return owned_.empty() ? mapped_.bytes() : owned_; }

  std::string source_;
  MappedFile mapped_;      // open()
  std::string owned_;      // parse()
  size_t data_start_ = 0;  // 8 + header length
  std::map<std::string, SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace serve
