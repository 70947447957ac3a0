#include "replica/frontend/kserve_json.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

namespace serve {
namespace {

using nlohmann::json;

Status bad(const std::string& what) { return absl::InvalidArgumentError(what); }

// Appends the leaves of a (possibly nested) JSON array in row-major order.
Status flatten(const json& node, std::vector<const json*>& out, int depth) {
  if (depth > 32) {
    return bad("data is nested too deeply");
  }
  if (node.is_array()) {
    for (const json& child : node) {
      if (Status st = flatten(child, out, depth + 1); !st.ok()) {
        return st;
      }
    }
    return absl::OkStatus();
  }
  out.push_back(&node);
  return absl::OkStatus();
}

template <typename T>
bool storeInteger(const json& v, std::byte* dst) {
  T value;
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
      return false;
    }
    value = static_cast<T>(u);
  } else if (v.is_number_integer()) {
    auto i = v.get<int64_t>();
    if constexpr (std::is_signed_v<T>) {
      if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max()) {
        return false;
      }
    } else {
      if (i < 0) {
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

bool storeElement(DataType type, const json& v, std::byte* dst) {
  switch (type) {
    case DataType::kBool: {
      if (!v.is_boolean()) {
        return false;
      }
      uint8_t b = v.get<bool>() ? 1 : 0;
      std::memcpy(dst, &b, 1);
      return true;
    }
    case DataType::kFp32: {
      if (!v.is_number()) {
        return false;
      }
      auto f = static_cast<float>(v.get<double>());
      std::memcpy(dst, &f, sizeof(f));
      return true;
    }
    case DataType::kFp64: {
      if (!v.is_number()) {
        return false;
      }
      double d = v.get<double>();
      std::memcpy(dst, &d, sizeof(d));
      return true;
    }
    case DataType::kUint8: return storeInteger<uint8_t>(v, dst);
    case DataType::kUint16: return storeInteger<uint16_t>(v, dst);
    case DataType::kUint32: return storeInteger<uint32_t>(v, dst);
    case DataType::kUint64: return storeInteger<uint64_t>(v, dst);
    case DataType::kInt8: return storeInteger<int8_t>(v, dst);
    case DataType::kInt16: return storeInteger<int16_t>(v, dst);
    case DataType::kInt32: return storeInteger<int32_t>(v, dst);
    case DataType::kInt64: return storeInteger<int64_t>(v, dst);
  }
  return false;
}

StatusOr<Tensor> parseTensor(const json& j, size_t index) {
  std::string where = "inputs[" + std::to_string(index) + "]";
  if (!j.is_object()) {
    return bad(where + ": expected an object");
  }
  Tensor t;
  auto name = j.find("name");
  if (name == j.end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return bad(where + ".name: expected a non-empty string");
  }
  t.name = name->get<std::string>();
  where = "input '" + t.name + "'";
  auto dt = j.find("datatype");
  if (dt == j.end() || !dt->is_string()) {
    return bad(where + ": datatype: expected a string such as \"FP32\"");
  }
  auto type = parseDataType(dt->get_ref<const std::string&>());
  if (!type) {
    return bad(where + ": datatype '" + dt->get<std::string>() +
               "' is not supported (BOOL, UINT8-64, INT8-64, FP32, FP64)");
  }
  t.datatype = *type;
  auto shape = j.find("shape");
  if (shape == j.end() || !shape->is_array()) {
    return bad(where + ": shape: expected an array of non-negative integers");
  }
  for (const json& d : *shape) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) {
      return bad(where + ": shape: expected an array of non-negative integers");
    }
    t.shape.push_back(d.get<int64_t>());
  }
  StatusOr<int64_t> count = shapeElementCount(t.shape);
  if (!count.ok()) {
    return bad(where + ": " + std::string(count.status().message()));
  }
  auto data = j.find("data");
  if (data == j.end()) {
    return bad(where + ": data: missing");
  }
  std::vector<const json*> leaves;
  leaves.reserve(static_cast<size_t>(*count));
  if (Status st = flatten(*data, leaves, 0); !st.ok()) {
    return bad(where + ": " + std::string(st.message()));
  }
  if (static_cast<int64_t>(leaves.size()) != *count) {
    return bad(where + ": shape " + j["shape"].dump() + " has " + std::to_string(*count) +
               " elements but data has " + std::to_string(leaves.size()));
  }
  size_t width = dataTypeSize(t.datatype);
  t.data.resize(leaves.size() * width);
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (!storeElement(t.datatype, *leaves[i], t.data.data() + i * width)) {
      return bad(where + ": data[" + std::to_string(i) + "] = " + leaves[i]->dump() +
                 " is not a valid " + std::string(dataTypeName(t.datatype)));
    }
  }
  return t;
}

void appendNumber(std::string& out, float v) {
  if (!std::isfinite(v)) {
    out += "null";  // JSON has no NaN/Inf
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

void appendNumber(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

template <typename T>
void appendInts(std::string& out, const Tensor& t) {
  char buf[32];
  bool first = true;
  for (T v : t.as<T>()) {
    if (!first) {
      out += ',';
    }
    first = false;
    auto r = std::to_chars(buf, buf + sizeof(buf), v);
    out.append(buf, r.ptr);
  }
}

void appendData(std::string& out, const Tensor& t) {
  out += '[';
  switch (t.datatype) {
    case DataType::kBool: {
      bool first = true;
      for (uint8_t b : t.as<uint8_t>()) {
        out += first ? "" : ",";
        out += b ? "true" : "false";
        first = false;
      }
      break;
    }
    case DataType::kFp32: {
      bool first = true;
      for (float v : t.as<float>()) {
        if (!first) {
          out += ',';
        }
        first = false;
        appendNumber(out, v);
      }
      break;
    }
    case DataType::kFp64: {
      bool first = true;
      for (double v : t.as<double>()) {
        if (!first) {
          out += ',';
        }
        first = false;
        appendNumber(out, v);
      }
      break;
    }
    case DataType::kUint8: appendInts<uint8_t>(out, t); break;
    case DataType::kUint16: appendInts<uint16_t>(out, t); break;
    case DataType::kUint32: appendInts<uint32_t>(out, t); break;
    case DataType::kUint64: appendInts<uint64_t>(out, t); break;
    case DataType::kInt8: appendInts<int8_t>(out, t); break;
    case DataType::kInt16: appendInts<int16_t>(out, t); break;
    case DataType::kInt32: appendInts<int32_t>(out, t); break;
    case DataType::kInt64: appendInts<int64_t>(out, t); break;
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

// Invalid UTF-8 (a percent-decoded URL path can carry any byte) becomes U+FFFD instead of a
// json::type_error escaping the codec.
std::string jsonQuoted(std::string_view s) {
  return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

json specsJson(const std::vector<TensorSpec>& specs) {
  json arr = json::array();
  for (const TensorSpec& s : specs) {
    arr.push_back({{"name", s.name}, {"datatype", dataTypeName(s.datatype)}, {"shape", s.shape}});
  }
  return arr;
}

}  // namespace

StatusOr<InferRequest> parseInferRequest(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return bad("malformed JSON body");
  }
  if (!j.is_object()) {
    return bad("the body must be a JSON object with an \"inputs\" array");
  }
  InferRequest req;
  try {
    if (auto id = j.find("id"); id != j.end()) {
      if (!id->is_string()) {
        return bad("id: expected a string");
      }
      req.id = id->get<std::string>();
    }
    auto inputs = j.find("inputs");
    if (inputs == j.end() || !inputs->is_array() || inputs->empty()) {
      return bad("inputs: expected a non-empty array of tensors");
    }
    for (size_t i = 0; i < inputs->size(); ++i) {
      StatusOr<Tensor> t = parseTensor((*inputs)[i], i);
      if (!t.ok()) {
        return t.status();
      }
      req.inputs.push_back(*std::move(t));
    }
    if (auto outputs = j.find("outputs"); outputs != j.end()) {
      if (!outputs->is_array()) {
        return bad("outputs: expected an array of {\"name\": ...} objects");
      }
      for (const json& o : *outputs) {
        if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) {
          return bad("outputs: expected an array of {\"name\": ...} objects");
        }
        req.requested_outputs.push_back(o["name"].get<std::string>());
      }
    }
  } catch (const json::exception& e) {
    return bad(std::string("invalid request: ") + e.what());
  }
  return req;
}

std::string inferResponseJson(const InferResponse& response) {
  std::string out;
  size_t guess = 64;
  for (const Tensor& t : response.outputs) {
    guess += 64 + t.data.size() * 3;
  }
  out.reserve(guess);
  out += "{\"model_name\":";
  out += jsonQuoted(response.model);
  if (!response.id.empty()) {
    out += ",\"id\":";
    out += jsonQuoted(response.id);
  }
  out += ",\"outputs\":[";
  for (size_t i = 0; i < response.outputs.size(); ++i) {
    const Tensor& t = response.outputs[i];
    if (i > 0) {
      out += ',';
    }
    out += "{\"name\":";
    out += jsonQuoted(t.name);
    out += ",\"datatype\":\"";
    out += dataTypeName(t.datatype);
    out += "\",\"shape\":";
    appendShape(out, t.shape);
    out += ",\"data\":";
    appendData(out, t);
    out += '}';
  }
  out += "]}";
  return out;
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

std::string errorJson(std::string_view message) { return "{\"error\":" + jsonQuoted(message) + "}"; }

}  // namespace serve
