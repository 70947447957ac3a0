#include "replica/frontend/kserve_grpc.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace serve {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;

template <typename T>
std::vector<T> values(const Tensor& t) {
  auto span = t.as<T>();
  return {span.begin(), span.end()};
}

template <typename T>
Tensor tensor(const std::string& name, DataType type, std::vector<int64_t> shape,
              const std::vector<T>& data) {
  Tensor t;
  t.name = name;
  t.datatype = type;
  t.shape = std::move(shape);
  t.data.resize(data.size() * sizeof(T));
  std::memcpy(t.data.data(), data.data(), t.data.size());
  return t;
}

template <typename T>
std::string rawBytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

ModelInferRequest::InferInputTensor* addInput(ModelInferRequest& r, const std::string& name,
                                              const std::string& datatype,
                                              std::vector<int64_t> shape) {
  auto* in = r.add_inputs();
  in->set_name(name);
  in->set_datatype(datatype);
  for (int64_t d : shape) {
    in->add_shape(d);
  }
  return in;
}

std::string errorOf(const ModelInferRequest& r) {
  StatusOr<InferRequest> out = decodeModelInferRequest(r);
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().code() == absl::StatusCode::kInvalidArgument);
  return messageOf(out.status());
}

TEST_CASE("kserve_grpc: typed FP32 contents decode to the request, with id, model and outputs") {
  ModelInferRequest r;
  r.set_model_name("m");
  r.set_id("req-1");
  auto* in = addInput(r, "x", "FP32", {2, 2});
  for (float f : {1.5f, -2.0f, 3.25f, 0.0f}) {
    in->mutable_contents()->add_fp32_contents(f);
  }
  r.add_outputs()->set_name("y");
  StatusOr<InferRequest> out = decodeModelInferRequest(r);
  REQUIRE(out.ok());
  CHECK(out->id == "req-1");
  CHECK(out->model == "m");
  REQUIRE(out->inputs.size() == 1);
  CHECK(out->inputs[0].name == "x");
  CHECK(out->inputs[0].datatype == DataType::kFp32);
  CHECK(out->inputs[0].shape == std::vector<int64_t>{2, 2});
  CHECK(values<float>(out->inputs[0]) == std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f});
  CHECK(out->requested_outputs == std::vector<std::string>{"y"});
  CHECK(requestEncoding(r) == TensorEncoding::kTyped);
}

TEST_CASE("kserve_grpc: raw FP32 contents decode byte for byte") {
  ModelInferRequest r;
  addInput(r, "a", "FP32", {1, 3});
  addInput(r, "b", "INT64", {2});
  r.add_raw_input_contents(rawBytes(std::vector<float>{1, 2, 3}));
  r.add_raw_input_contents(rawBytes(std::vector<int64_t>{-7, 1LL << 40}));
  StatusOr<InferRequest> out = decodeModelInferRequest(r);
  REQUIRE(out.ok());
  REQUIRE(out->inputs.size() == 2);
  CHECK(values<float>(out->inputs[0]) == std::vector<float>{1, 2, 3});
  CHECK(out->inputs[1].datatype == DataType::kInt64);
  CHECK(values<int64_t>(out->inputs[1]) == std::vector<int64_t>{-7, 1LL << 40});
  CHECK(requestEncoding(r) == TensorEncoding::kRaw);
}

TEST_CASE("kserve_grpc: every typed datatype reads its protocol field") {
  ModelInferRequest r;
  addInput(r, "b", "BOOL", {2})->mutable_contents()->add_bool_contents(true);
  r.mutable_inputs(0)->mutable_contents()->add_bool_contents(false);
  addInput(r, "u8", "UINT8", {1})->mutable_contents()->add_uint_contents(255);
  addInput(r, "u16", "UINT16", {1})->mutable_contents()->add_uint_contents(65535);
  addInput(r, "u32", "UINT32", {1})->mutable_contents()->add_uint_contents(4000000000u);
  addInput(r, "u64", "UINT64", {1})->mutable_contents()->add_uint64_contents(1ULL << 63);
  addInput(r, "i8", "INT8", {1})->mutable_contents()->add_int_contents(-128);
  addInput(r, "i16", "INT16", {1})->mutable_contents()->add_int_contents(-32768);
  addInput(r, "i32", "INT32", {1})->mutable_contents()->add_int_contents(-5);
  addInput(r, "i64", "INT64", {1})->mutable_contents()->add_int64_contents(-(1LL << 50));
  addInput(r, "f64", "FP64", {1})->mutable_contents()->add_fp64_contents(0.1);
  StatusOr<InferRequest> out = decodeModelInferRequest(r);
  REQUIRE(out.ok());
  const auto& in = out->inputs;
  REQUIRE(in.size() == 10);
  CHECK(values<uint8_t>(in[0]) == std::vector<uint8_t>{1, 0});
  CHECK(values<uint8_t>(in[1]) == std::vector<uint8_t>{255});
  CHECK(values<uint16_t>(in[2]) == std::vector<uint16_t>{65535});
  CHECK(values<uint32_t>(in[3]) == std::vector<uint32_t>{4000000000u});
  CHECK(values<uint64_t>(in[4]) == std::vector<uint64_t>{1ULL << 63});
  CHECK(values<int8_t>(in[5]) == std::vector<int8_t>{-128});
  CHECK(values<int16_t>(in[6]) == std::vector<int16_t>{-32768});
  CHECK(values<int32_t>(in[7]) == std::vector<int32_t>{-5});
  CHECK(values<int64_t>(in[8]) == std::vector<int64_t>{-(1LL << 50)});
  CHECK(values<double>(in[9]) == std::vector<double>{0.1});
}

TEST_CASE("kserve_grpc: malformed requests are refused with the input and the rule") {
  SUBCASE("no inputs") {
    ModelInferRequest r;
    CHECK(errorOf(r) == "inputs: expected at least one tensor");
  }
  SUBCASE("unnamed input") {
    ModelInferRequest r;
    addInput(r, "", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    CHECK(errorOf(r) == "inputs[0].name: expected a non-empty string");
  }
  SUBCASE("unsupported datatype") {
    ModelInferRequest r;
    addInput(r, "x", "BYTES", {1})->mutable_contents()->add_bytes_contents("a");
    CHECK(errorOf(r) ==
          "input 'x': datatype 'BYTES' is not supported (BOOL, UINT8-64, INT8-64, FP32, FP64)");
  }
  SUBCASE("negative dimension") {
    ModelInferRequest r;
    addInput(r, "x", "FP32", {-1, 2});
    CHECK(errorOf(r) == "input 'x': shape: expected non-negative dimensions");
  }
  SUBCASE("typed element count does not match the shape") {
    ModelInferRequest r;
    auto* in = addInput(r, "x", "FP32", {2, 2});
    for (int i = 0; i < 3; ++i) {
      in->mutable_contents()->add_fp32_contents(1);
    }
    CHECK(errorOf(r) == "input 'x': shape [2,2] has 4 elements but contents.fp32_contents has 3");
  }
  SUBCASE("elements in the field of another datatype") {
    ModelInferRequest r;
    addInput(r, "x", "FP32", {1})->mutable_contents()->add_fp64_contents(1);
    CHECK(errorOf(r) == "input 'x': shape [1] has 1 elements but contents.fp32_contents has 0");
  }
  SUBCASE("narrow integer out of range") {
    ModelInferRequest r;
    auto* in = addInput(r, "x", "UINT8", {2});
    in->mutable_contents()->add_uint_contents(1);
    in->mutable_contents()->add_uint_contents(256);
    CHECK(errorOf(r) == "input 'x': contents.uint_contents[1] is not a valid UINT8");
  }
  SUBCASE("signed narrow integer out of range") {
    ModelInferRequest r;
    addInput(r, "x", "INT16", {1})->mutable_contents()->add_int_contents(40000);
    CHECK(errorOf(r) == "input 'x': contents.int_contents[0] is not a valid INT16");
  }
  SUBCASE("raw size does not match shape and datatype") {
    ModelInferRequest r;
    addInput(r, "x", "FP32", {1, 3});
    r.add_raw_input_contents(rawBytes(std::vector<float>{1, 2}));
    CHECK(errorOf(r) ==
          "input 'x': shape [1,3] of FP32 needs 12 bytes but raw_input_contents[0] has 8");
  }
  SUBCASE("raw entries must match the inputs one to one") {
    ModelInferRequest r;
    addInput(r, "a", "FP32", {1});
    addInput(r, "b", "FP32", {1});
    r.add_raw_input_contents(rawBytes(std::vector<float>{1}));
    CHECK(errorOf(r) == "raw_input_contents: expected one entry per input (2) but got 1");
  }
  SUBCASE("raw and typed contents mixed") {
    ModelInferRequest r;
    addInput(r, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    r.add_raw_input_contents(rawBytes(std::vector<float>{1}));
    CHECK(errorOf(r) == "input 'x': contents must be empty when raw_input_contents is used");
  }
  SUBCASE("requested output without a name") {
    ModelInferRequest r;
    addInput(r, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    r.add_outputs();
    CHECK(errorOf(r) == "outputs: expected each requested output to have a name");
  }
}

TEST_CASE("kserve_grpc: an empty tensor is valid in both forms") {
  ModelInferRequest typed;
  addInput(typed, "x", "FP32", {0, 4});
  StatusOr<InferRequest> a = decodeModelInferRequest(typed);
  REQUIRE(a.ok());
  CHECK(a->inputs[0].data.empty());
  ModelInferRequest raw;
  addInput(raw, "x", "FP32", {0, 4});
  raw.add_raw_input_contents("");
  StatusOr<InferRequest> b = decodeModelInferRequest(raw);
  REQUIRE(b.ok());
  CHECK(b->inputs[0].shape == std::vector<int64_t>{0, 4});
}

TEST_CASE("kserve_grpc: responses are typed or raw as asked") {
  InferResponse resp;
  resp.id = "r1";
  resp.model = "m";
  resp.outputs.push_back(tensor<float>("p", DataType::kFp32, {1, 3}, {0.25f, 0.5f, 0.25f}));
  resp.outputs.push_back(tensor<uint8_t>("b", DataType::kBool, {2}, {1, 0}));
  resp.outputs.push_back(tensor<int16_t>("s", DataType::kInt16, {1}, {-3}));

  ModelInferResponse typed = encodeModelInferResponse(resp, TensorEncoding::kTyped);
  CHECK(typed.model_name() == "m");
  CHECK(typed.id() == "r1");
  CHECK(typed.raw_output_contents_size() == 0);
  REQUIRE(typed.outputs_size() == 3);
  CHECK(typed.outputs(0).name() == "p");
  CHECK(typed.outputs(0).datatype() == "FP32");
  CHECK(std::vector<int64_t>(typed.outputs(0).shape().begin(), typed.outputs(0).shape().end()) ==
        std::vector<int64_t>{1, 3});
  const auto& fp = typed.outputs(0).contents().fp32_contents();
  CHECK(std::vector<float>(fp.begin(), fp.end()) == std::vector<float>{0.25f, 0.5f, 0.25f});
  const auto& bools = typed.outputs(1).contents().bool_contents();
  CHECK(std::vector<bool>(bools.begin(), bools.end()) == std::vector<bool>{true, false});
  const auto& ints = typed.outputs(2).contents().int_contents();
  CHECK(std::vector<int32_t>(ints.begin(), ints.end()) == std::vector<int32_t>{-3});

  ModelInferResponse raw = encodeModelInferResponse(resp, TensorEncoding::kRaw);
  REQUIRE(raw.outputs_size() == 3);
  CHECK(raw.outputs(0).datatype() == "FP32");
  CHECK_FALSE(raw.outputs(0).has_contents());
  REQUIRE(raw.raw_output_contents_size() == 3);
  CHECK(raw.raw_output_contents(0) == rawBytes(std::vector<float>{0.25f, 0.5f, 0.25f}));
  CHECK(raw.raw_output_contents(1) == rawBytes(std::vector<uint8_t>{1, 0}));
  CHECK(raw.raw_output_contents(2) == rawBytes(std::vector<int16_t>{-3}));
}

TEST_CASE("kserve_grpc: a typed round trip preserves every datatype") {
  InferResponse resp;
  resp.outputs.push_back(tensor<uint16_t>("u16", DataType::kUint16, {1}, {65535}));
  resp.outputs.push_back(tensor<uint64_t>("u64", DataType::kUint64, {1}, {1ULL << 60}));
  resp.outputs.push_back(tensor<int8_t>("i8", DataType::kInt8, {1}, {-100}));
  resp.outputs.push_back(tensor<int64_t>("i64", DataType::kInt64, {1}, {-(1LL << 60)}));
  resp.outputs.push_back(tensor<double>("f64", DataType::kFp64, {1}, {2.5}));
  ModelInferResponse typed = encodeModelInferResponse(resp, TensorEncoding::kTyped);
  // Feed the outputs back in as inputs: the decoder must read what the encoder wrote.
  ModelInferRequest r;
  for (const auto& o : typed.outputs()) {
    auto* in = r.add_inputs();
    in->set_name(o.name());
    in->set_datatype(o.datatype());
    *in->mutable_shape() = o.shape();
    *in->mutable_contents() = o.contents();
  }
  StatusOr<InferRequest> back = decodeModelInferRequest(r);
  REQUIRE(back.ok());
  REQUIRE(back->inputs.size() == resp.outputs.size());
  for (size_t i = 0; i < resp.outputs.size(); ++i) {
    CAPTURE(resp.outputs[i].name);
    CHECK(back->inputs[i].datatype == resp.outputs[i].datatype);
    CHECK(back->inputs[i].data == resp.outputs[i].data);
  }
}

TEST_CASE("kserve_grpc: model metadata carries name, platform, versions and signature") {
  ModelMetadata meta;
  meta.name = "digits";
  meta.platform = "serve-mlp";
  meta.versions = {"1"};
  meta.inputs = {{"input", DataType::kFp32, {-1, 64}}};
  meta.outputs = {{"probabilities", DataType::kFp32, {-1, 10}}};
  inference::ModelMetadataResponse m = encodeModelMetadata(meta);
  CHECK(m.name() == "digits");
  CHECK(m.platform() == "serve-mlp");
  REQUIRE(m.versions_size() == 1);
  CHECK(m.versions(0) == "1");
  REQUIRE(m.inputs_size() == 1);
  CHECK(m.inputs(0).name() == "input");
  CHECK(m.inputs(0).datatype() == "FP32");
  CHECK(std::vector<int64_t>(m.inputs(0).shape().begin(), m.inputs(0).shape().end()) ==
        std::vector<int64_t>{-1, 64});
  REQUIRE(m.outputs_size() == 1);
  CHECK(m.outputs(0).name() == "probabilities");
}

}  // namespace
}  // namespace serve
