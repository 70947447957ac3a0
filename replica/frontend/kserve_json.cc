#include "replica/frontend/kserve_json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>

namespace serve {
namespace {

using nlohmann::json;

Status bad(const std::string& what) { return absl::InvalidArgumentError(what); }

// One element of a tensor's `data` as the parser saw it, before the datatype (which may come
// later in the object) says how to store it.
struct Leaf {
  enum class Kind : uint8_t { kInt, kUint, kFloat, kBool, kString, kNull, kObject };
  Kind kind;
  bool b = false;
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
  size_t text = 0;  // kString: index into RawInput::strings
};

template <typename T>
bool storeInteger(const Leaf& v, std::byte* dst) {
  T value;
  if (v.kind == Leaf::Kind::kUint) {
    if (v.u > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
      return false;
    }
    value = static_cast<T>(v.u);
  } else if (v.kind == Leaf::Kind::kInt) {
    if constexpr (std::is_signed_v<T>) {
      if (v.i < std::numeric_limits<T>::min() || v.i > std::numeric_limits<T>::max()) {
        return false;
      }
    } else {
      if (v.i < 0) {
        return false;
      }
    }
    value = static_cast<T>(v.i);
  } else {
    return false;
  }
  std::memcpy(dst, &value, sizeof(T));
  return true;
}

std::optional<double> leafNumber(const Leaf& v) {
  switch (v.kind) {
    case Leaf::Kind::kInt: return static_cast<double>(v.i);
    case Leaf::Kind::kUint: return static_cast<double>(v.u);
    case Leaf::Kind::kFloat: return v.d;
    default: return std::nullopt;
  }
}

bool storeElement(DataType type, const Leaf& v, std::byte* dst) {
  switch (type) {
    case DataType::kBool: {
      if (v.kind != Leaf::Kind::kBool) {
        return false;
      }
      uint8_t b = v.b ? 1 : 0;
      std::memcpy(dst, &b, 1);
      return true;
    }
    case DataType::kFp32: {
      auto n = leafNumber(v);
      if (!n) {
        return false;
      }
      auto f = static_cast<float>(*n);
      std::memcpy(dst, &f, sizeof(f));
      return true;
    }
    case DataType::kFp64: {
      auto n = leafNumber(v);
      if (!n) {
        return false;
      }
      std::memcpy(dst, &*n, sizeof(double));
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

// An input object's fields as they arrived, validated together once the object closes so the
// checks (and so the error reported first) do not depend on the order of the keys.
struct RawInput {
  std::optional<std::string> name;  // set only when a string came
  bool name_bad = false;
  std::optional<std::string> datatype;
  bool datatype_bad = false;
  bool shape_seen = false;
  bool shape_bad = false;
  std::vector<int64_t> shape;
  bool data_seen = false;
  bool data_too_deep = false;
  std::vector<Leaf> data;
  std::vector<std::string> strings;
};

std::string leafText(const RawInput& in, const Leaf& v) {
  switch (v.kind) {
    case Leaf::Kind::kInt: return std::to_string(v.i);
    case Leaf::Kind::kUint: return std::to_string(v.u);
    case Leaf::Kind::kFloat: return json(v.d).dump();
    case Leaf::Kind::kBool: return v.b ? "true" : "false";
    case Leaf::Kind::kString: return json(in.strings[v.text]).dump(-1, ' ', false,
                                                                     json::error_handler_t::replace);
    case Leaf::Kind::kNull: return "null";
    case Leaf::Kind::kObject: return "an object";
  }
  return "?";
}

std::string shapeText(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    out += (i > 0 ? "," : "") + std::to_string(shape[i]);
  }
  return out + "]";
}

StatusOr<Tensor> finishTensor(RawInput& in, size_t index) {
  std::string where = "inputs[" + std::to_string(index) + "]";
  if (in.name_bad || !in.name || in.name->empty()) {
    return bad(where + ".name: expected a non-empty string");
  }
  Tensor t;
  t.name = std::move(*in.name);
  where = "input '" + t.name + "'";
  if (in.datatype_bad || !in.datatype) {
    return bad(where + ": datatype: expected a string such as \"FP32\"");
  }
  auto type = parseDataType(*in.datatype);
  if (!type) {
    return bad(where + ": datatype '" + *in.datatype +
               "' is not supported (BOOL, UINT8-64, INT8-64, FP32, FP64)");
  }
  t.datatype = *type;
  if (!in.shape_seen || in.shape_bad) {
    return bad(where + ": shape: expected an array of non-negative integers");
  }
  t.shape = std::move(in.shape);
  StatusOr<int64_t> count = shapeElementCount(t.shape);
  if (!count.ok()) {
    return bad(where + ": " + messageOf(count.status()));
  }
  if (!in.data_seen) {
    return bad(where + ": data: missing");
  }
  if (in.data_too_deep) {
    return bad(where + ": data is nested too deeply");
  }
  if (static_cast<int64_t>(in.data.size()) != *count) {
    return bad(where + ": shape " + shapeText(t.shape) + " has " + std::to_string(*count) +
               " elements but data has " + std::to_string(in.data.size()));
  }
  size_t width = dataTypeSize(t.datatype);
  t.data.resize(in.data.size() * width);
  for (size_t i = 0; i < in.data.size(); ++i) {
    if (!storeElement(t.datatype, in.data[i], t.data.data() + i * width)) {
      return bad(where + ": data[" + std::to_string(i) + "] = " + leafText(in, in.data[i]) +
                 " is not a valid " + std::string(dataTypeName(t.datatype)));
    }
  }
  return t;
}

// Builds an InferRequest straight from nlohmann's SAX events: no DOM, so a request costs a
// handful of allocations instead of one per JSON value. Semantic errors stop the parse with
// `error` set; syntax errors leave it unset.
class InferRequestSax : public nlohmann::json_sax<json> {
 public:
  InferRequest request;
  Status error;
  bool saw_inputs = false;

  bool null() override { return scalar(Leaf{Leaf::Kind::kNull}); }
  bool boolean(bool v) override {
    Leaf l{Leaf::Kind::kBool};
    l.b = v;
    return scalar(l);
  }
  bool number_integer(number_integer_t v) override {
    Leaf l{Leaf::Kind::kInt};
    l.i = v;
    return scalar(l);
  }
  bool number_unsigned(number_unsigned_t v) override {
    Leaf l{Leaf::Kind::kUint};
    l.u = v;
    return scalar(l);
  }
  bool number_float(number_float_t v, const string_t&) override {
    Leaf l{Leaf::Kind::kFloat};
    l.d = v;
    return scalar(l);
  }
  bool string(string_t& v) override {
    if (skip_ > 0) {
      return true;
    }
    switch (state_) {
      case State::kTop:
        if (key_ == "id") {
          request.id = std::move(v);
          return true;
        }
        return topValueOfWrongType();
      case State::kInput:
        if (key_ == "name") {
          input_.name = std::move(v);
        } else if (key_ == "datatype") {
          input_.datatype = std::move(v);
        } else if (key_ == "data") {
          input_.data_seen = true;  // a lone string: data has one non-numeric element
          input_.strings.push_back(std::move(v));
          Leaf l{Leaf::Kind::kString};
          l.text = input_.strings.size() - 1;
          input_.data.push_back(l);
        } else if (key_ == "shape") {
          input_.shape_seen = input_.shape_bad = true;
        }
        return true;
      case State::kData: {
        input_.strings.push_back(std::move(v));
        Leaf l{Leaf::Kind::kString};
        l.text = input_.strings.size() - 1;
        input_.data.push_back(l);
        return true;
      }
      case State::kShape:
        input_.shape_bad = true;
        return true;
      case State::kOutput:
        if (key_ == "name") {
          request.requested_outputs.push_back(std::move(v));
          output_named_ = true;
        }
        return true;
      default:
        return scalar(Leaf{Leaf::Kind::kString});
    }
  }
  bool binary(binary_t&) override { return scalar(Leaf{Leaf::Kind::kNull}); }

  bool start_object(std::size_t) override {
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    switch (state_) {
      case State::kRoot:
        state_ = State::kTop;
        return true;
      case State::kInputs:
        input_ = RawInput{};
        state_ = State::kInput;
        return true;
      case State::kOutputs:
        output_named_ = false;
        state_ = State::kOutput;
        return true;
      case State::kData:
        input_.data.push_back(Leaf{Leaf::Kind::kObject});
        skip_ = 1;
        return true;
      case State::kTop:
        return startNested(false);
      case State::kInput:
        if (key_ == "data") {
          input_.data_seen = true;
          input_.data.push_back(Leaf{Leaf::Kind::kObject});
        } else if (key_ == "shape") {
          input_.shape_seen = input_.shape_bad = true;
        } else if (key_ == "name") {
          input_.name_bad = true;
        } else if (key_ == "datatype") {
          input_.datatype_bad = true;
        }
        skip_ = 1;
        return true;
      case State::kShape:
        input_.shape_bad = true;
        skip_ = 1;
        return true;
      case State::kOutput:
        skip_ = 1;
        return true;
    }
    return true;
  }

  bool key(string_t& k) override {
    if (skip_ == 0) {
      key_ = std::move(k);
    }
    return true;
  }

  bool end_object() override {
    if (skip_ > 0) {
      --skip_;
      return true;
    }
    switch (state_) {
      case State::kTop:
        state_ = State::kDone;
        return true;
      case State::kInput: {
        StatusOr<Tensor> t = finishTensor(input_, request.inputs.size());
        if (!t.ok()) {
          error = t.status();
          return false;
        }
        request.inputs.push_back(*std::move(t));
        state_ = State::kInputs;
        return true;
      }
      case State::kOutput:
        if (!output_named_) {
          return fail("outputs: expected an array of {\"name\": ...} objects");
        }
        state_ = State::kOutputs;
        return true;
      default:
        return true;
    }
  }

  bool start_array(std::size_t) override {
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    switch (state_) {
      case State::kRoot:
        return fail("the body must be a JSON object with an \"inputs\" array");
      case State::kTop:
        return startNested(true);
      case State::kInput:
        if (key_ == "shape") {
          input_.shape_seen = true;
          input_.shape.clear();
          state_ = State::kShape;
        } else if (key_ == "data") {
          input_.data_seen = true;
          input_.data.clear();
          data_depth_ = 1;
          state_ = State::kData;
        } else {
          if (key_ == "name") {
            input_.name_bad = true;
          } else if (key_ == "datatype") {
            input_.datatype_bad = true;
          }
          skip_ = 1;
        }
        return true;
      case State::kData:
        if (++data_depth_ > 32) {
          input_.data_too_deep = true;
        }
        return true;
      case State::kShape:
        input_.shape_bad = true;
        skip_ = 1;
        return true;
      case State::kInputs:
        return fail("inputs[" + std::to_string(request.inputs.size()) +
                    "]: expected an object");
      case State::kOutputs:
        return fail("outputs: expected an array of {\"name\": ...} objects");
      default:
        skip_ = 1;
        return true;
    }
  }

  bool end_array() override {
    if (skip_ > 0) {
      --skip_;
      return true;
    }
    switch (state_) {
      case State::kShape:
        state_ = State::kInput;
        return true;
      case State::kData:
        if (--data_depth_ == 0) {
          state_ = State::kInput;
        }
        return true;
      case State::kInputs:
        if (request.inputs.empty()) {
          return fail("inputs: expected a non-empty array of tensors");
        }
        state_ = State::kTop;
        return true;
      case State::kOutputs:
        state_ = State::kTop;
        return true;
      default:
        return true;
    }
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

  bool complete() const { return state_ == State::kDone; }

 private:
  enum class State { kRoot, kTop, kInputs, kInput, kShape, kData, kOutputs, kOutput, kDone };

  bool fail(const std::string& message) {
    error = bad(message);
    return false;
  }

  // A value inside the top-level object that is not an array or object.
  bool topValueOfWrongType() {
    if (key_ == "id") {
      return fail("id: expected a string");
    }
    if (key_ == "inputs") {
      return fail("inputs: expected a non-empty array of tensors");
    }
    if (key_ == "outputs") {
      return fail("outputs: expected an array of {\"name\": ...} objects");
    }
    return true;  // other keys (e.g. "parameters") are ignored
  }

  bool startNested(bool array) {
    if (key_ == "inputs" && array) {
      saw_inputs = true;
      state_ = State::kInputs;
      return true;
    }
    if (key_ == "outputs" && array) {
      state_ = State::kOutputs;
      return true;
    }
    if (key_ == "id" || key_ == "inputs" || key_ == "outputs") {
      return topValueOfWrongType();
    }
    skip_ = 1;
    return true;
  }

  bool scalar(const Leaf& leaf) {
    if (skip_ > 0) {
      return true;
    }
    switch (state_) {
      case State::kRoot:
        return fail("the body must be a JSON object with an \"inputs\" array");
      case State::kTop:
        return topValueOfWrongType();
      case State::kInputs:
        return fail("inputs[" + std::to_string(request.inputs.size()) +
                    "]: expected an object");
      case State::kInput:
        if (key_ == "name") {
          input_.name_bad = true;
        } else if (key_ == "datatype") {
          input_.datatype_bad = true;
        } else if (key_ == "shape") {
          input_.shape_seen = input_.shape_bad = true;
        } else if (key_ == "data") {
          input_.data_seen = true;
          input_.data.push_back(leaf);
        }
        return true;
      case State::kShape:
        if (leaf.kind == Leaf::Kind::kUint) {
          input_.shape.push_back(static_cast<int64_t>(
              std::min<uint64_t>(leaf.u, std::numeric_limits<int64_t>::max())));
        } else if (leaf.kind == Leaf::Kind::kInt && leaf.i >= 0) {
          input_.shape.push_back(leaf.i);
        } else {
          input_.shape_bad = true;
        }
        return true;
      case State::kData:
        input_.data.push_back(leaf);
        return true;
      case State::kOutputs:
        return fail("outputs: expected an array of {\"name\": ...} objects");
      case State::kOutput:
        if (key_ == "name") {
          return fail("outputs: expected an array of {\"name\": ...} objects");
        }
        return true;
      case State::kDone:
        return true;
    }
    return true;
  }

  State state_ = State::kRoot;
  std::string key_;
  RawInput input_;
  int data_depth_ = 0;
  int skip_ = 0;  // > 0 while skipping an ignored value: its nesting depth
  bool output_named_ = false;
};

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

// Names and ids are nearly always plain ASCII: append those directly. Anything else goes
// through nlohmann's escaper, which also turns invalid UTF-8 (a percent-decoded URL path can
// carry any byte) into U+FFFD instead of throwing.
std::string jsonQuoted(std::string_view s) {
  bool plain = std::all_of(s.begin(), s.end(), [](char c) {
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
  });
  if (plain) {
    std::string out;
    out.reserve(s.size() + 2);
    out += '"';
    out += s;
    out += '"';
    return out;
  }
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
  InferRequestSax sax;
  bool ok = json::sax_parse(body.begin(), body.end(), &sax);
  if (!sax.error.ok()) {
    return sax.error;
  }
  if (!ok || !sax.complete()) {
    return bad("malformed JSON body");
  }
  if (!sax.saw_inputs || sax.request.inputs.empty()) {
    return bad("inputs: expected a non-empty array of tensors");
  }
  return std::move(sax.request);
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
