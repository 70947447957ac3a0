#include "replica/frontend/kserve_grpc.h"

#include <cstring>
#include <string>
#include <type_traits>
#include <utility>

namespace serve {
namespace {

using inference::InferTensorContents;
using inference::ModelInferRequest;
using inference::ModelInferResponse;

Status bad(const std::string& what) { return absl::InvalidArgumentError(what); }

std::string shapeText(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    out += (i == 0 ? "" : ",") + std::to_string(shape[i]);
  }
  return out + "]";
}

// The typed field that carries a datatype's elements, as the protocol assigns them.
const char* contentsField(DataType type) {
  switch (type) {
    case DataType::kBool:
      return "bool_contents";
    case DataType::kUint8:
    case DataType::kUint16:
    case DataType::kUint32:
      return "uint_contents";
    case DataType::kUint64:
      return "uint64_contents";
    case DataType::kInt8:
    case DataType::kInt16:
    case DataType::kInt32:
      return "int_contents";
    case DataType::kInt64:
      return "int64_contents";
    case DataType::kFp32:
      return "fp32_contents";
    case DataType::kFp64:
      return "fp64_contents";
  }
  return "?";
}

// Copies a repeated field into `t.data` as elements of type Dst; the index of the first value
// that does not fit Dst, or -1.
template <typename Dst, typename Field>
int64_t storeAll(const Field& values, Tensor& t) {
  t.data.resize(static_cast<size_t>(values.size()) * sizeof(Dst));
  std::byte* out = t.data.data();
  for (int i = 0; i < values.size(); ++i) {
    auto v = values.Get(i);
    using Src = decltype(v);
    if constexpr (std::is_integral_v<Dst> && !std::is_same_v<Dst, Src> &&
                  !std::is_same_v<Src, bool>) {
      if (!std::in_range<Dst>(v)) {
        return i;
      }
    }
    Dst d = static_cast<Dst>(v);
    std::memcpy(out + static_cast<size_t>(i) * sizeof(Dst), &d, sizeof(Dst));
  }
  return -1;
}

// Fills t.data from the typed field of t.datatype (its size was checked against the shape);
// the index of the first value too large for a narrow integer type, or -1.
int64_t storeTyped(const InferTensorContents& c, Tensor& t) {
  switch (t.datatype) {
    case DataType::kBool:
      return storeAll<uint8_t>(c.bool_contents(), t);
    case DataType::kUint8:
      return storeAll<uint8_t>(c.uint_contents(), t);
    case DataType::kUint16:
      return storeAll<uint16_t>(c.uint_contents(), t);
    case DataType::kUint32:
      return storeAll<uint32_t>(c.uint_contents(), t);
    case DataType::kUint64:
      return storeAll<uint64_t>(c.uint64_contents(), t);
    case DataType::kInt8:
      return storeAll<int8_t>(c.int_contents(), t);
    case DataType::kInt16:
      return storeAll<int16_t>(c.int_contents(), t);
    case DataType::kInt32:
      return storeAll<int32_t>(c.int_contents(), t);
    case DataType::kInt64:
      return storeAll<int64_t>(c.int64_contents(), t);
    case DataType::kFp32:
      return storeAll<float>(c.fp32_contents(), t);
    case DataType::kFp64:
      return storeAll<double>(c.fp64_contents(), t);
  }
  return -1;
}

int64_t typedCount(const InferTensorContents& c, DataType type) {
  switch (type) {
    case DataType::kBool:
      return c.bool_contents_size();
    case DataType::kUint8:
    case DataType::kUint16:
    case DataType::kUint32:
      return c.uint_contents_size();
    case DataType::kUint64:
      return c.uint64_contents_size();
    case DataType::kInt8:
    case DataType::kInt16:
    case DataType::kInt32:
      return c.int_contents_size();
    case DataType::kInt64:
      return c.int64_contents_size();
    case DataType::kFp32:
      return c.fp32_contents_size();
    case DataType::kFp64:
      return c.fp64_contents_size();
  }
  return 0;
}

bool hasTypedContents(const InferTensorContents& c) {
  return c.bool_contents_size() + c.int_contents_size() + c.int64_contents_size() +
             c.uint_contents_size() + c.uint64_contents_size() + c.fp32_contents_size() +
             c.fp64_contents_size() + c.bytes_contents_size() >
         0;
}

template <typename T, typename Field>
void appendAll(const Tensor& t, Field* field) {
  std::span<const T> values = t.as<T>();
  field->Reserve(static_cast<int>(values.size()));
  for (T v : values) {
    field->Add(v);
  }
}

void encodeTyped(const Tensor& t, InferTensorContents* c) {
  switch (t.datatype) {
    case DataType::kBool: {
      std::span<const uint8_t> values = t.as<uint8_t>();
      c->mutable_bool_contents()->Reserve(static_cast<int>(values.size()));
      for (uint8_t v : values) {
        c->add_bool_contents(v != 0);
      }
      return;
    }
    case DataType::kUint8:
      return appendAll<uint8_t>(t, c->mutable_uint_contents());
    case DataType::kUint16:
      return appendAll<uint16_t>(t, c->mutable_uint_contents());
    case DataType::kUint32:
      return appendAll<uint32_t>(t, c->mutable_uint_contents());
    case DataType::kUint64:
      return appendAll<uint64_t>(t, c->mutable_uint64_contents());
    case DataType::kInt8:
      return appendAll<int8_t>(t, c->mutable_int_contents());
    case DataType::kInt16:
      return appendAll<int16_t>(t, c->mutable_int_contents());
    case DataType::kInt32:
      return appendAll<int32_t>(t, c->mutable_int_contents());
    case DataType::kInt64:
      return appendAll<int64_t>(t, c->mutable_int64_contents());
    case DataType::kFp32:
      return appendAll<float>(t, c->mutable_fp32_contents());
    case DataType::kFp64:
      return appendAll<double>(t, c->mutable_fp64_contents());
  }
}

StatusOr<Tensor> decodeInput(const ModelInferRequest& request, int index, bool raw) {
  const ModelInferRequest::InferInputTensor& in = request.inputs(index);
  if (in.name().empty()) {
    return bad("inputs[" + std::to_string(index) + "].name: expected a non-empty string");
  }
  const std::string where = "input '" + in.name() + "'";
  Tensor t;
  t.name = in.name();
  std::optional<DataType> type = parseDataType(in.datatype());
  if (!type) {
    return bad(where + ": datatype '" + in.datatype() +
               "' is not supported (BOOL, UINT8-64, INT8-64, FP32, FP64)");
  }
  t.datatype = *type;
  for (int64_t dim : in.shape()) {
    if (dim < 0) {
      return bad(where + ": shape: expected non-negative dimensions");
    }
    t.shape.push_back(dim);
  }
  StatusOr<int64_t> count = shapeElementCount(t.shape);
  if (!count.ok()) {
    return bad(where + ": " + messageOf(count.status()));
  }

  if (raw) {
    if (hasTypedContents(in.contents())) {
      return bad(where + ": contents must be empty when raw_input_contents is used");
    }
    const std::string& bytes = request.raw_input_contents(index);
    const size_t want = static_cast<size_t>(*count) * dataTypeSize(t.datatype);
    if (bytes.size() != want) {
      return bad(where + ": shape " + shapeText(t.shape) + " of " +
                 std::string(dataTypeName(t.datatype)) + " needs " + std::to_string(want) +
                 " bytes but raw_input_contents[" + std::to_string(index) + "] has " +
                 std::to_string(bytes.size()));
    }
    const auto* first = reinterpret_cast<const std::byte*>(bytes.data());
    t.data.assign(first, first + bytes.size());  // no memcpy: an empty tensor has no pointer
    return t;
  }

  const int64_t have = typedCount(in.contents(), t.datatype);
  if (have != *count) {
    return bad(where + ": shape " + shapeText(t.shape) + " has " + std::to_string(*count) +
               " elements but contents." + contentsField(t.datatype) + " has " +
               std::to_string(have));
  }
  const int64_t out_of_range = storeTyped(in.contents(), t);
  if (out_of_range >= 0) {
    return bad(where + ": contents." + contentsField(t.datatype) + "[" +
               std::to_string(out_of_range) + "] is not a valid " +
               std::string(dataTypeName(t.datatype)));
  }
  return t;
}

}  // namespace

TensorEncoding requestEncoding(const ModelInferRequest& request) {
  return request.raw_input_contents_size() > 0 ? TensorEncoding::kRaw : TensorEncoding::kTyped;
}

StatusOr<InferRequest> decodeModelInferRequest(const ModelInferRequest& request) {
  if (request.inputs_size() == 0) {
    return bad("inputs: expected at least one tensor");
  }
  const bool raw = requestEncoding(request) == TensorEncoding::kRaw;
  if (raw && request.raw_input_contents_size() != request.inputs_size()) {
    return bad("raw_input_contents: expected one entry per input (" +
               std::to_string(request.inputs_size()) + ") but got " +
               std::to_string(request.raw_input_contents_size()));
  }
  InferRequest out;
  out.id = request.id();
  out.model = request.model_name();
  out.inputs.reserve(static_cast<size_t>(request.inputs_size()));
  for (int i = 0; i < request.inputs_size(); ++i) {
    StatusOr<Tensor> t = decodeInput(request, i, raw);
    if (!t.ok()) {
      return t.status();
    }
    out.inputs.push_back(*std::move(t));
  }
  for (const ModelInferRequest::InferRequestedOutputTensor& o : request.outputs()) {
    if (o.name().empty()) {
      return bad("outputs: expected each requested output to have a name");
    }
    out.requested_outputs.push_back(o.name());
  }
  return out;
}

ModelInferResponse encodeModelInferResponse(const InferResponse& response,
                                            TensorEncoding encoding) {
  ModelInferResponse out;
  out.set_model_name(response.model);
  out.set_id(response.id);
  for (const Tensor& t : response.outputs) {
    ModelInferResponse::InferOutputTensor* o = out.add_outputs();
    o->set_name(t.name);
    o->set_datatype(std::string(dataTypeName(t.datatype)));
    for (int64_t dim : t.shape) {
      o->add_shape(dim);
    }
    if (encoding == TensorEncoding::kRaw) {
      out.add_raw_output_contents(reinterpret_cast<const char*>(t.data.data()), t.data.size());
    } else {
      encodeTyped(t, o->mutable_contents());
    }
  }
  return out;
}

inference::ModelMetadataResponse encodeModelMetadata(const ModelMetadata& metadata) {
  inference::ModelMetadataResponse out;
  out.set_name(metadata.name);
  out.set_platform(metadata.platform);
  for (const std::string& v : metadata.versions) {
    out.add_versions(v);
  }
  auto add = [](const TensorSpec& spec, inference::ModelMetadataResponse::TensorMetadata* m) {
    m->set_name(spec.name);
    m->set_datatype(std::string(dataTypeName(spec.datatype)));
    for (int64_t dim : spec.shape) {
      m->add_shape(dim);
    }
  };
  for (const TensorSpec& spec : metadata.inputs) {
    add(spec, out.add_inputs());
  }
  for (const TensorSpec& spec : metadata.outputs) {
    add(spec, out.add_outputs());
  }
  return out;
}

}  // namespace serve
