#include "replica/runtime/safetensors.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string_view>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"

namespace serve {

// Tensor bytes are copied straight into host values; a big-endian host would need byte swaps.
static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader assumes a little-endian host");

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

constexpr std::string_view kMetadataKey = "__metadata__";
// The reference implementation's limit (safetensors' MAX_HEADER_SIZE): real headers are
// kilobytes, and the JSON parser copies the header into a buffer of its own.
constexpr uint64_t kMaxHeaderSize = 100'000'000;

struct DtypeInfo {
  std::string_view name;
  size_t size;
};

constexpr std::array<DtypeInfo, 13> kDtypes = {{
    {"BOOL", 1},
    {"U8", 1},
    {"I8", 1},
    {"U16", 2},
    {"I16", 2},
    {"F16", 2},
    {"BF16", 2},
    {"U32", 4},
    {"I32", 4},
    {"F32", 4},
    {"U64", 8},
    {"I64", 8},
    {"F64", 8},
}};

std::optional<size_t> dtypeSize(std::string_view dtype) {
  for (const DtypeInfo& info : kDtypes) {
    if (info.name == dtype) {
      return info.size;
    }
  }
  return std::nullopt;
}

std::string dtypeList() {
  std::string out;
  for (const DtypeInfo& info : kDtypes) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", std::string(info.name));
  }
  return out;
}

std::string shapeText(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ", ", shape[i]);
  }
  return out + "]";
}

std::string rangeText(size_t begin, size_t end) { return absl::StrCat("[", begin, ", ", end, ")"); }

// A JSON integer >= 0. simdjson reports integers that fit int64 as INT64 and larger ones as
// UINT64; doubles (even 2.0), negatives and other types are refused.
std::optional<uint64_t> nonNegativeInteger(const element& value) {
  if (value.type() == element_type::INT64) {
    int64_t i = value.get_int64().value_unsafe();
    if (i < 0) {
      return std::nullopt;
    }
    return static_cast<uint64_t>(i);
  }
  if (value.type() == element_type::UINT64) {
    return value.get_uint64().value_unsafe();
  }
  return std::nullopt;
}

// Validation failures all share one prefix: the source, then the tensor when one is at fault.
class Validator {
 public:
  explicit Validator(const std::string& source) : source_(source) {}

  Status fail(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", what));
  }
  Status failTensor(const std::string& name, const std::string& what) const {
    return fail(absl::StrCat("tensor '", name, "': ", what));
  }

 private:
  const std::string& source_;
};

// The dtype as written; dtypeSize() of it is known to succeed.
StatusOr<std::string> parseDtype(const Validator& v, const std::string& name,
                                 const simdjson::dom::object& entry) {
  element value;
  if (entry["dtype"].get(value) != simdjson::SUCCESS) {
    return v.failTensor(name, "dtype is missing");
  }
  std::string_view dtype;
  if (value.get_string().get(dtype) != simdjson::SUCCESS) {
    return v.failTensor(name, "dtype is not a string");
  }
  if (!dtypeSize(dtype)) {
    return v.failTensor(
        name, absl::StrCat("dtype '", std::string(dtype), "' is not supported (expected one of ",
                           dtypeList(), ")"));
  }
  return std::string(dtype);
}

StatusOr<std::vector<int64_t>> parseShape(const Validator& v, const std::string& name,
                                          const simdjson::dom::object& entry) {
  element value;
  if (entry["shape"].get(value) != simdjson::SUCCESS) {
    return v.failTensor(name, "shape is missing");
  }
  simdjson::dom::array dims;
  if (value.get_array().get(dims) != simdjson::SUCCESS) {
    return v.failTensor(name, "shape must be an array of non-negative integers");
  }
  std::vector<int64_t> shape;
  for (element dim : dims) {
    std::optional<uint64_t> n = nonNegativeInteger(dim);
    if (!n || *n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return v.failTensor(name, "shape must be an array of non-negative integers");
    }
    shape.push_back(static_cast<int64_t>(*n));
  }
  return shape;
}

struct ByteRange {
  size_t begin = 0;
  size_t end = 0;
};

StatusOr<ByteRange> parseOffsets(const Validator& v, const std::string& name,
                                 const simdjson::dom::object& entry) {
  element value;
  if (entry["data_offsets"].get(value) != simdjson::SUCCESS) {
    return v.failTensor(name, "data_offsets is missing");
  }
  simdjson::dom::array offsets;
  std::optional<uint64_t> begin;
  std::optional<uint64_t> end;
  if (value.get_array().get(offsets) == simdjson::SUCCESS && offsets.size() == 2) {
    begin = nonNegativeInteger(offsets.at(0).value_unsafe());
    end = nonNegativeInteger(offsets.at(1).value_unsafe());
  }
  if (!begin || !end) {
    return v.failTensor(name, "data_offsets must be [begin, end], two non-negative integers");
  }
  if (*begin > *end) {
    return v.failTensor(
        name, absl::StrCat("data_offsets [", *begin, ", ", *end, "): begin is after end"));
  }
  return ByteRange{*begin, *end};
}

// Bytes the shape needs at `dtype_size` bytes per element; nullopt when that overflows.
std::optional<uint64_t> byteCount(const std::vector<int64_t>& shape, size_t dtype_size) {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) {
    return 0;  // checked first: a zero dimension empties the tensor even if the rest overflow
  }
  uint64_t bytes = dtype_size;
  for (int64_t dim : shape) {
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes)) {
      return std::nullopt;
    }
  }
  return bytes;
}

StatusOr<SafetensorsTensor> parseTensor(const Validator& v, const std::string& name,
                                        const element& value, size_t data_size) {
  simdjson::dom::object entry;
  if (value.get_object().get(entry) != simdjson::SUCCESS) {
    return v.failTensor(name, "entry is not a JSON object");
  }
  StatusOr<std::string> dtype = parseDtype(v, name, entry);
  if (!dtype.ok()) {
    return dtype.status();
  }
  StatusOr<std::vector<int64_t>> shape = parseShape(v, name, entry);
  if (!shape.ok()) {
    return shape.status();
  }
  StatusOr<ByteRange> range = parseOffsets(v, name, entry);
  if (!range.ok()) {
    return range.status();
  }
  SafetensorsTensor tensor{name, *std::move(dtype), *std::move(shape), range->begin, range->end};
  if (tensor.end > data_size) {
    return v.failTensor(name, absl::StrCat("data_offsets ", rangeText(tensor.begin, tensor.end),
                                           " exceed the data section (", data_size, " bytes)"));
  }
  std::optional<uint64_t> needed = byteCount(tensor.shape, *dtypeSize(tensor.dtype));
  if (!needed || *needed != tensor.end - tensor.begin) {
    return v.failTensor(
        name,
        absl::StrCat("data_offsets ", rangeText(tensor.begin, tensor.end), " hold ",
                     tensor.end - tensor.begin, " bytes but ", tensor.dtype, " shape ",
                     shapeText(tensor.shape), " needs ",
                     needed ? absl::StrCat(*needed, " bytes") : std::string("2^64 bytes or more")));
  }
  return tensor;
}

StatusOr<std::map<std::string, std::string>> parseMetadata(const Validator& v,
                                                           const element& value) {
  simdjson::dom::object object;
  if (value.get_object().get(object) != simdjson::SUCCESS) {
    return v.fail("__metadata__ is not a JSON object");
  }
  std::map<std::string, std::string> metadata;
  for (simdjson::dom::key_value_pair field : object) {
    std::string key(field.key);
    std::string_view text;
    if (field.value.get_string().get(text) != simdjson::SUCCESS) {
      return v.fail(absl::StrCat("__metadata__ '", key, "' is not a string"));
    }
    if (!metadata.emplace(key, std::string(text)).second) {
      return v.fail(absl::StrCat("__metadata__ '", key, "' appears twice"));
    }
  }
  return metadata;
}

// Empty tensors hold no bytes and so cannot overlap anything, wherever their offsets point.
Status checkNoOverlap(const Validator& v, const std::map<std::string, SafetensorsTensor>& tensors) {
  std::vector<const SafetensorsTensor*> ranges;
  for (const auto& [name, tensor] : tensors) {
    if (tensor.begin != tensor.end) {
      ranges.push_back(&tensor);
    }
  }
  // Ties broken by name so the reported pair does not depend on the sort's stability.
  std::sort(ranges.begin(), ranges.end(), [](const auto* a, const auto* b) {
    return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
  });
  for (size_t i = 1; i < ranges.size(); ++i) {
    const SafetensorsTensor& prev = *ranges[i - 1];
    const SafetensorsTensor& cur = *ranges[i];
    if (cur.begin < prev.end) {
      return v.fail(absl::StrCat("tensors '", prev.name, "' ", rangeText(prev.begin, prev.end),
                                 " and '", cur.name, "' ", rangeText(cur.begin, cur.end),
                                 " overlap"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

StatusOr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  StatusOr<MappedFile> mapped = MappedFile::open(path, "safetensors file");
  if (!mapped.ok()) {
    return mapped.status();
  }
  SafetensorsFile file;
  file.source_ = path;
  file.mapped_ = *std::move(mapped);
  if (Status st = file.index(file.all()); !st.ok()) {
    return st;
  }
  return file;
}

StatusOr<SafetensorsFile> SafetensorsFile::parse(std::string bytes, const std::string& source) {
  SafetensorsFile file;
  file.source_ = source;
  file.owned_ = std::move(bytes);
  if (Status st = file.index(file.all()); !st.ok()) {
    return st;
  }
  return file;
}

Status SafetensorsFile::index(std::string_view bytes) {
  Validator v(source_);
  if (bytes.size() < 8) {
    return v.fail(absl::StrCat("file is ", bytes.size(),
                               " bytes; a safetensors file starts with an 8-byte header length"));
  }
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), sizeof(header_size));
  if (header_size > bytes.size() - 8) {
    return v.fail(absl::StrCat("header length ", header_size, " runs past the end of the file (",
                               bytes.size(), " bytes)"));
  }
  if (header_size > kMaxHeaderSize) {
    return v.fail(absl::StrCat("header length ", header_size, " exceeds the limit of ",
                               kMaxHeaderSize, " bytes"));
  }

  data_start_ = 8 + static_cast<size_t>(header_size);
  const size_t data_size = bytes.size() - data_start_;

  // parse(ptr, len) copies into the parser's own padded buffer, so the file needs no padding.
  simdjson::dom::parser parser;
  element root;
  if (auto error = parser.parse(bytes.data() + 8, header_size).get(root);
      error != simdjson::SUCCESS) {
    return v.fail(absl::StrCat("header is not valid JSON: ", simdjson::error_message(error)));
  }
  simdjson::dom::object entries;
  if (root.get_object().get(entries) != simdjson::SUCCESS) {
    return v.fail("header is not a JSON object");
  }
  bool seen_metadata = false;
  for (simdjson::dom::key_value_pair field : entries) {
    std::string name(field.key);
    if (name == kMetadataKey) {
      if (seen_metadata) {
        return v.fail("__metadata__ appears twice");
      }
      seen_metadata = true;
      StatusOr<std::map<std::string, std::string>> metadata = parseMetadata(v, field.value);
      if (!metadata.ok()) {
        return metadata.status();
      }
      metadata_ = *std::move(metadata);
      continue;
    }
    if (tensors_.contains(name)) {
      return v.failTensor(name, "appears twice in the header");
    }
    StatusOr<SafetensorsTensor> tensor = parseTensor(v, name, field.value, data_size);
    if (!tensor.ok()) {
      return tensor.status();
    }
    tensors_.emplace(name, *std::move(tensor));
  }
  return checkNoOverlap(v, tensors_);
}

std::span<const std::byte> SafetensorsFile::bytes(const SafetensorsTensor& tensor) const {
  // Tensors come from tensors(), whose ranges parse() checked; anything else is a caller bug.
  const std::string_view file = all();
  const size_t data_size = file.size() - data_start_;
  if (tensor.begin > tensor.end || tensor.end > data_size) {
    std::fprintf(stderr, "safetensors: broken invariant: range [%zu, %zu) outside %s\n",
                 tensor.begin, tensor.end, source_.c_str());
    std::abort();
  }
  const auto* data = reinterpret_cast<const std::byte*>(file.data()) + data_start_;
  return {data + tensor.begin, tensor.end - tensor.begin};
}

StatusOr<std::vector<float>> SafetensorsFile::floats(const std::string& name) const {
  auto found = tensors_.find(name);
  if (found == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat(source_, ": tensor '", name, "' is missing"));
  }
  const SafetensorsTensor& tensor = found->second;
  if (tensor.dtype != "F32") {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": tensor '", name, "' has dtype ", tensor.dtype, "; expected F32"));
  }
  std::span<const std::byte> raw = bytes(tensor);
  std::vector<float> values(raw.size() / sizeof(float));
  // The range may sit at any byte offset in the file, so copy rather than reinterpret. An empty
  // vector's data() may be null, which memcpy does not accept even for zero bytes.
  if (!values.empty()) {
    std::memcpy(values.data(), raw.data(), values.size() * sizeof(float));
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(absl::StrCat(source_, ": tensor '", name, "': element ", i,
                                                     " is ",
                                                     std::isnan(values[i]) ? "NaN" : "infinite"));
    }
  }
  return values;
}

}  // namespace serve
