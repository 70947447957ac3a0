#include "replica/frontend/kserve_json.h"

#include <simdjson.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

namespace serve {

// Binary tensor data is little-endian on the wire and copied as it is in memory.
static_assert(std::endian::native == std::endian::little,
              "the binary tensor data extension is implemented for little-endian hosts");

namespace {

using nlohmann::json;

Status bad(const std::string& what) { return absl::InvalidArgumentError(what); }

using simdjson::dom::element;
using simdjson::dom::element_type;

template <typename T>
bool storeInteger(const element& v, std::byte* dst) {
  T value;
  if (v.type() == element_type::UINT64) {
    uint64_t u = v.get_uint64().value_unsafe();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
      return false;
    }
    value = static_cast<T>(u);
  } else if (v.type() == element_type::INT64) {
    int64_t i = v.get_int64().value_unsafe();
    if constexpr (std::is_signed_v<T>) {
      if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max()) {
        return false;
      }
    } else {
      // simdjson reports every integer that fits int64 as INT64, so unsigned bounds apply here
      if (i < 0 || static_cast<uint64_t>(i) > std::numeric_limits<T>::max()) {
        return false;
      }
    }
    value = static_cast<T>(i);
  } else {
    return false;
  }
  std::memcpy(dst, &value, sizeof(T));
  return true;
}

std::optional<double> number(const element& v) {
  switch (v.type()) {
    case element_type::INT64:
      return static_cast<double>(v.get_int64().value_unsafe());
    case element_type::UINT64:
      return static_cast<double>(v.get_uint64().value_unsafe());
    case element_type::DOUBLE:
      return v.get_double().value_unsafe();
    default:
      return std::nullopt;
  }
}

bool storeElement(DataType type, const element& v, std::byte* dst) {
  switch (type) {
    case DataType::kBool: {
      if (v.type() != element_type::BOOL) {
        return false;
      }
      uint8_t b = v.get_bool().value_unsafe() ? 1 : 0;
      std::memcpy(dst, &b, 1);
      return true;
    }
    case DataType::kFp32: {
      auto n = number(v);
      if (!n) {
        return false;
      }
      auto f = static_cast<float>(*n);
      std::memcpy(dst, &f, sizeof(f));
      return true;
    }
    case DataType::kFp64: {
      auto n = number(v);
      if (!n) {
        return false;
      }
      std::memcpy(dst, &*n, sizeof(double));
      return true;
    }
    case DataType::kUint8:
      return storeInteger<uint8_t>(v, dst);
    case DataType::kUint16:
      return storeInteger<uint16_t>(v, dst);
    case DataType::kUint32:
      return storeInteger<uint32_t>(v, dst);
    case DataType::kUint64:
      return storeInteger<uint64_t>(v, dst);
    case DataType::kInt8:
      return storeInteger<int8_t>(v, dst);
    case DataType::kInt16:
      return storeInteger<int16_t>(v, dst);
    case DataType::kInt32:
      return storeInteger<int32_t>(v, dst);
    case DataType::kInt64:
      return storeInteger<int64_t>(v, dst);
  }
  return false;
}

// Appends the leaves of a (possibly nested) array in row-major order; a scalar is one leaf.
Status flatten(const element& node, std::vector<element>& out, int depth) {
  if (depth > 32) {
    return bad("data is nested too deeply");
  }
  if (node.type() == element_type::ARRAY) {
    // Held in a local: a range-for over value_unsafe() of a temporary result would dangle.
    simdjson::dom::array items = node.get_array().value_unsafe();
    for (element child : items) {
      if (Status st = flatten(child, out, depth + 1); !st.ok()) {
        return st;
      }
    }
    return absl::OkStatus();
  }
  out.push_back(node);
  return absl::OkStatus();
}

// Nested data must follow the shape level by level: [[1,2,3],[4]] is not a [2,2] tensor even
// though it has four elements. Flat data (no inner arrays) is the other accepted form.
bool nestingMatches(const element& node, const std::vector<int64_t>& shape, size_t level) {
  simdjson::dom::array items;
  if (level >= shape.size() || node.get_array().get(items) != simdjson::SUCCESS ||
      static_cast<int64_t>(items.size()) != shape[level]) {
    return false;
  }
  bool last = level + 1 == shape.size();
  for (element child : items) {
    bool is_array = child.type() == element_type::ARRAY;
    if (is_array == last || (is_array && !nestingMatches(child, shape, level + 1))) {
      return false;
    }
  }
  return true;
}

bool isNested(const element& data) {
  simdjson::dom::array items;
  if (data.get_array().get(items) != simdjson::SUCCESS) {
    return false;
  }
  for (element child : items) {
    if (child.type() == element_type::ARRAY) {
      return true;
    }
  }
  return false;
}

std::string shapeText(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    out += (i > 0 ? "," : "") + std::to_string(shape[i]);
  }
  return out + "]";
}

std::string leafText(const element& v) {
  return v.type() == element_type::OBJECT ? "an object" : simdjson::minify(v);
}

// Looks a key up; nullopt when the object lacks it.
std::optional<element> field(const simdjson::dom::object& obj, std::string_view key) {
  element e;
  if (obj.at_key(key).get(e) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  return e;
}

// The binary part of a body (what follows the JSON), handed out input by input.
struct BinaryCursor {
  std::string_view rest;
  bool present = false;  // the request had an Inference-Header-Content-Length header
  size_t used = 0;
};

// An input's "parameters": {"binary_data_size": N}; nullopt when it has none.
StatusOr<std::optional<uint64_t>> binaryDataSize(const simdjson::dom::object& obj,
                                                 const std::string& where) {
  auto params = field(obj, "parameters");
  if (!params) {
    return std::optional<uint64_t>();
  }
  simdjson::dom::object p;
  if (params->get_object().get(p) != simdjson::SUCCESS) {
    return bad(where + ": parameters: expected an object");
  }
  auto size = field(p, "binary_data_size");
  if (!size) {
    return std::optional<uint64_t>();
  }
  if (size->type() == element_type::INT64 && size->get_int64().value_unsafe() >= 0) {
    return std::optional<uint64_t>(static_cast<uint64_t>(size->get_int64().value_unsafe()));
  }
  if (size->type() == element_type::UINT64) {
    return std::optional<uint64_t>(size->get_uint64().value_unsafe());
  }
  return bad(where + ": parameters.binary_data_size: expected a non-negative integer");
}

StatusOr<Tensor> parseTensor(const element& j, size_t index, BinaryCursor& binary) {
  std::string where = "inputs[" + std::to_string(index) + "]";
  simdjson::dom::object obj;
  if (j.get_object().get(obj) != simdjson::SUCCESS) {
    return bad(where + ": expected an object");
  }
  Tensor t;
  auto name = field(obj, "name");
  std::string_view name_text;
  if (!name || name->get_string().get(name_text) != simdjson::SUCCESS || name_text.empty()) {
    return bad(where + ".name: expected a non-empty string");
  }
  t.name = std::string(name_text);
  where = "input '" + t.name + "'";
  auto dt = field(obj, "datatype");
  std::string_view dt_text;
  if (!dt || dt->get_string().get(dt_text) != simdjson::SUCCESS) {
    return bad(where + ": datatype: expected a string such as \"FP32\"");
  }
  auto type = parseDataType(dt_text);
  if (!type) {
    return bad(where + ": datatype '" + std::string(dt_text) +
               "' is not supported (BOOL, UINT8-64, INT8-64, FP32, FP64)");
  }
  t.datatype = *type;
  auto shape = field(obj, "shape");
  if (!shape || shape->type() != element_type::ARRAY) {
    return bad(where + ": shape: expected an array of non-negative integers");
  }
  simdjson::dom::array dims = shape->get_array().value_unsafe();
  for (element d : dims) {
    int64_t dim = -1;
    if (d.type() == element_type::INT64) {
      dim = d.get_int64().value_unsafe();
    } else if (d.type() == element_type::UINT64) {
      dim = std::numeric_limits<int64_t>::max();  // far too large; shapeElementCount says so
    }
    if (dim < 0) {
      return bad(where + ": shape: expected an array of non-negative integers");
    }
    t.shape.push_back(dim);
  }
  StatusOr<int64_t> count = shapeElementCount(t.shape);
  if (!count.ok()) {
    return bad(where + ": " + messageOf(count.status()));
  }
  size_t width = dataTypeSize(t.datatype);
  auto data = field(obj, "data");
  StatusOr<std::optional<uint64_t>> binary_size = binaryDataSize(obj, where);
  if (!binary_size.ok()) {
    return binary_size.status();
  }
  if (binary_size->has_value()) {
    const uint64_t size = **binary_size;
    if (data) {
      return bad(where + ": has both data and parameters.binary_data_size; send one");
    }
    if (!binary.present) {
      return bad(where + ": parameters.binary_data_size needs the " +
                 std::string(kInferHeaderLengthHeader) +
                 " header (the size of the JSON part of the body)");
    }
    const uint64_t want = static_cast<uint64_t>(*count) * width;
    if (size != want) {
      return bad(where + ": binary_data_size " + std::to_string(size) + " does not match " +
                 std::string(dataTypeName(t.datatype)) + " " + shapeText(t.shape) + " (" +
                 std::to_string(want) + " bytes)");
    }
    if (size > binary.rest.size()) {
      return bad(where + ": binary_data_size " + std::to_string(size) +
                 " runs past the end of the body (" + std::to_string(binary.rest.size()) +
                 " bytes of binary data left)");
    }
    t.data.resize(size);
    if (size > 0) {
      std::memcpy(t.data.data(), binary.rest.data(), size);
    }
    binary.rest.remove_prefix(size);
    binary.used += size;
    return t;
  }
  if (!data) {
    return bad(where + ": data: missing (or parameters.binary_data_size for binary data)");
  }
  std::vector<element> leaves;
  // The shape's count is the client's claim, checked against the data below: reserve no more
  // than a small bound up front, or a shape like [2147483647] with one value would allocate
  // gigabytes (and fail) before the mismatch is found.
  leaves.reserve(static_cast<size_t>(std::min<int64_t>(*count, 1 << 16)));
  if (Status st = flatten(*data, leaves, 0); !st.ok()) {
    return bad(where + ": " + messageOf(st));
  }
  if (static_cast<int64_t>(leaves.size()) != *count) {
    return bad(where + ": shape " + shapeText(t.shape) + " has " + std::to_string(*count) +
               " elements but data has " + std::to_string(leaves.size()));
  }
  if (isNested(*data) && !nestingMatches(*data, t.shape, 0)) {
    return bad(where + ": nested data does not follow shape " + shapeText(t.shape));
  }
  t.data.resize(leaves.size() * width);
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (!storeElement(t.datatype, leaves[i], t.data.data() + i * width)) {
      return bad(where + ": data[" + std::to_string(i) + "] = " + leafText(leaves[i]) +
                 " is not a valid " + std::string(dataTypeName(t.datatype)));
    }
  }
  return t;
}

// One element as JSON: shortest round-trip form for numbers (JSON has no NaN or infinity, so
// those become null), true/false for BOOL.
template <typename T>
void appendElement(std::string& out, T v) {
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(v)) {
      out += "null";
      return;
    }
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

template <typename T>
void appendElements(std::string& out, const Tensor& t) {
  bool first = true;
  for (T v : t.as<T>()) {
    if (!first) {
      out += ',';
    }
    first = false;
    if constexpr (std::is_same_v<T, bool>) {
      out += v ? "true" : "false";
    } else {
      appendElement(out, v);
    }
  }
}

void appendData(std::string& out, const Tensor& t) {
  out += '[';
  switch (t.datatype) {
    case DataType::kBool:
      appendElements<bool>(out, t);
      break;
    case DataType::kFp32:
      appendElements<float>(out, t);
      break;
    case DataType::kFp64:
      appendElements<double>(out, t);
      break;
    case DataType::kUint8:
      appendElements<uint8_t>(out, t);
      break;
    case DataType::kUint16:
      appendElements<uint16_t>(out, t);
      break;
    case DataType::kUint32:
      appendElements<uint32_t>(out, t);
      break;
    case DataType::kUint64:
      appendElements<uint64_t>(out, t);
      break;
    case DataType::kInt8:
      appendElements<int8_t>(out, t);
      break;
    case DataType::kInt16:
      appendElements<int16_t>(out, t);
      break;
    case DataType::kInt32:
      appendElements<int32_t>(out, t);
      break;
    case DataType::kInt64:
      appendElements<int64_t>(out, t);
      break;
  }
  out += ']';
}

void appendShape(std::string& out, const std::vector<int64_t>& shape) {
  out += '[';
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    out += std::to_string(shape[i]);
  }
  out += ']';
}

// Names and ids are nearly always plain ASCII: append those directly. Anything else goes
// through nlohmann's escaper, which also turns invalid UTF-8 (a percent-decoded URL path can
// carry any byte) into U+FFFD instead of throwing.
void appendQuoted(std::string& out, std::string_view s) {
  bool plain = std::all_of(s.begin(), s.end(),
                           [](char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; });
  if (plain) {
    out += '"';
    out += s;
    out += '"';
    return;
  }
  out += json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

json specsJson(const std::vector<TensorSpec>& specs) {
  json arr = json::array();
  for (const TensorSpec& s : specs) {
    arr.push_back({{"name", s.name}, {"datatype", dataTypeName(s.datatype)}, {"shape", s.shape}});
  }
  return arr;
}

}  // namespace

bool ResponseEncoding::binary(std::string_view output) const {
  auto named = [output](const std::vector<std::string>& names) {
    return std::find(names.begin(), names.end(), output) != names.end();
  };
  if (named(binary_outputs)) {
    return true;
  }
  return all_binary && !named(json_outputs);
}

StatusOr<ParsedInferBody> parseInferBody(std::string_view body, std::optional<size_t> json_length) {
  BinaryCursor binary;
  std::string_view json_part = body;
  if (json_length) {
    if (*json_length > body.size()) {
      return bad(std::string(kInferHeaderLengthHeader) + " " + std::to_string(*json_length) +
                 " exceeds the body's " + std::to_string(body.size()) + " bytes");
    }
    json_part = body.substr(0, *json_length);
    binary.rest = body.substr(*json_length);
    binary.present = true;
  }
  // One parser per thread: it keeps its buffers between requests, so parsing allocates only
  // when a body is larger than any this thread has seen.
  thread_local simdjson::dom::parser parser;
  element doc;
  if (parser.parse(json_part.data(), json_part.size()).get(doc) != simdjson::SUCCESS) {
    return bad("malformed JSON body");
  }
  simdjson::dom::object top;
  if (doc.get_object().get(top) != simdjson::SUCCESS) {
    return bad("the body must be a JSON object with an \"inputs\" array");
  }
  ParsedInferBody parsed;
  InferRequest& req = parsed.request;
  if (auto id = field(top, "id")) {
    std::string_view text;
    if (id->get_string().get(text) != simdjson::SUCCESS) {
      return bad("id: expected a string");
    }
    req.id = std::string(text);
  }
  if (auto params = field(top, "parameters")) {
    simdjson::dom::object p;
    if (params->get_object().get(p) != simdjson::SUCCESS) {
      return bad("parameters: expected an object");
    }
    if (auto all = field(p, "binary_data_output")) {
      if (all->get_bool().get(parsed.encoding.all_binary) != simdjson::SUCCESS) {
        return bad("parameters.binary_data_output: expected true or false");
      }
    }
  }
  auto inputs = field(top, "inputs");
  simdjson::dom::array input_array;
  if (!inputs || inputs->get_array().get(input_array) != simdjson::SUCCESS ||
      input_array.size() == 0) {
    return bad("inputs: expected a non-empty array of tensors");
  }
  for (element in : input_array) {
    StatusOr<Tensor> t = parseTensor(in, req.inputs.size(), binary);
    if (!t.ok()) {
      return t.status();
    }
    req.inputs.push_back(*std::move(t));
  }
  if (!binary.rest.empty()) {
    return bad("the body has " + std::to_string(binary.rest.size()) +
               " bytes of binary data that no input claims (the inputs' binary_data_size add "
               "up to " +
               std::to_string(binary.used) + ")");
  }
  if (auto outputs = field(top, "outputs")) {
    constexpr const char* kOutputsRule = "outputs: expected an array of {\"name\": ...} objects";
    simdjson::dom::array output_array;
    if (outputs->get_array().get(output_array) != simdjson::SUCCESS) {
      return bad(kOutputsRule);
    }
    for (element o : output_array) {
      simdjson::dom::object out;
      std::string_view name;
      if (o.get_object().get(out) != simdjson::SUCCESS ||
          out.at_key("name").get_string().get(name) != simdjson::SUCCESS) {
        return bad(kOutputsRule);
      }
      req.requested_outputs.emplace_back(name);
      auto params = field(out, "parameters");
      if (!params) {
        continue;
      }
      const std::string where =
          "outputs[" + std::to_string(req.requested_outputs.size() - 1) + "].parameters";
      simdjson::dom::object p;
      if (params->get_object().get(p) != simdjson::SUCCESS) {
        return bad(where + ": expected an object");
      }
      if (auto flag = field(p, "binary_data")) {
        bool binary_data = false;
        if (flag->get_bool().get(binary_data) != simdjson::SUCCESS) {
          return bad(where + ".binary_data: expected true or false");
        }
        (binary_data ? parsed.encoding.binary_outputs : parsed.encoding.json_outputs)
            .emplace_back(name);
      }
    }
  }
  return parsed;
}

StatusOr<InferRequest> parseInferRequest(std::string_view body) {
  StatusOr<ParsedInferBody> parsed = parseInferBody(body, std::nullopt);
  if (!parsed.ok()) {
    return parsed.status();
  }
  return std::move(parsed->request);
}

EncodedResponse encodeInferResponse(const InferResponse& response,
                                    const ResponseEncoding& encoding) {
  EncodedResponse encoded;
  std::string& out = encoded.body;
  size_t guess = 64;
  size_t binary_bytes = 0;
  bool any_binary = false;
  for (const Tensor& t : response.outputs) {
    if (encoding.binary(t.name)) {
      any_binary = true;
      guess += 96;
      binary_bytes += t.data.size();
    } else {
      guess += 64 + t.data.size() * 3;
    }
  }
  out.reserve(guess + binary_bytes);
  out += "{\"model_name\":";
  appendQuoted(out, response.model);
  if (!response.id.empty()) {
    out += ",\"id\":";
    appendQuoted(out, response.id);
  }
  out += ",\"outputs\":[";
  for (size_t i = 0; i < response.outputs.size(); ++i) {
    const Tensor& t = response.outputs[i];
    if (i > 0) {
      out += ',';
    }
    out += "{\"name\":";
    appendQuoted(out, t.name);
    out += ",\"datatype\":\"";
    out += dataTypeName(t.datatype);
    out += "\",\"shape\":";
    appendShape(out, t.shape);
    if (encoding.binary(t.name)) {
      out += ",\"parameters\":{\"binary_data_size\":";
      out += std::to_string(t.data.size());
      out += '}';
    } else {
      out += ",\"data\":";
      appendData(out, t);
    }
    out += '}';
  }
  out += "]}";
  if (!any_binary) {
    return encoded;
  }
  encoded.json_length = out.size();
  for (const Tensor& t : response.outputs) {
    if (encoding.binary(t.name)) {
      out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
    }
  }
  return encoded;
}

std::string inferResponseJson(const InferResponse& response) {
  return encodeInferResponse(response, ResponseEncoding{}).body;
}

std::string modelMetadataJson(const ModelMetadata& m) {
  json j = {{"name", m.name},
            {"versions", m.versions},
            {"platform", m.platform},
            {"inputs", specsJson(m.inputs)},
            {"outputs", specsJson(m.outputs)},
            {"parameters", {{"backend", m.backend}}}};
  return j.dump();
}

std::string errorJson(std::string_view message) {
  std::string out = "{\"error\":";
  appendQuoted(out, message);
  out += '}';
  return out;
}

}  // namespace serve
