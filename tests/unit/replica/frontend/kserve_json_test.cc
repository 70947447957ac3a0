#include "replica/frontend/kserve_json.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace serve {
namespace {

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
  const auto* first = reinterpret_cast<const std::byte*>(data.data());
  t.data.assign(first, first + data.size() * sizeof(T));
  return t;
}

std::string nested(int depth, const std::string& leaf) {
  return std::string(static_cast<size_t>(depth), '[') + leaf +
         std::string(static_cast<size_t>(depth), ']');
}

std::string oneInput(const std::string& datatype, const std::string& shape,
                     const std::string& data) {
  return R"({"inputs":[{"name":"x","datatype":")" + datatype + R"(","shape":)" + shape +
         R"(,"data":)" + data + "}]}";
}

TEST_CASE("parseInferRequest: FP32 data, flat or nested, in row-major order") {
  const std::vector<std::string> bodies = {
      R"({"id":"r1","inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[1,2,3,4.5]}]})",
      R"({"id":"r1","inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[[1,2],[3,4.5]]}]})",
  };
  for (const std::string& body : bodies) {
    CAPTURE(body);
    StatusOr<InferRequest> req = parseInferRequest(body);
    REQUIRE(req.ok());
    CHECK(req->id == "r1");
    CHECK(req->model.empty());
    CHECK(req->requested_outputs.empty());
    REQUIRE(req->inputs.size() == 1);
    const Tensor& x = req->inputs[0];
    CHECK(x.name == "x");
    CHECK(x.datatype == DataType::kFp32);
    CHECK(x.shape == std::vector<int64_t>{2, 2});
    CHECK(x.data.size() == 16);
    CHECK(values<float>(x) == std::vector<float>{1.0f, 2.0f, 3.0f, 4.5f});
  }
}

TEST_CASE("parseInferRequest: integer and boolean datatypes store exact values") {
  SUBCASE("INT64 extremes") {
    auto req = parseInferRequest(
        oneInput("INT64", "[3]", "[-9223372036854775808, 0, 9223372036854775807]"));
    REQUIRE(req.ok());
    CHECK(req->inputs[0].datatype == DataType::kInt64);
    CHECK(values<int64_t>(req->inputs[0]) ==
          std::vector<int64_t>{std::numeric_limits<int64_t>::min(), 0,
                               std::numeric_limits<int64_t>::max()});
  }
  SUBCASE("BOOL") {
    auto req = parseInferRequest(oneInput("BOOL", "[1,3]", "[[true,false,true]]"));
    REQUIRE(req.ok());
    CHECK(req->inputs[0].datatype == DataType::kBool);
    CHECK(values<uint8_t>(req->inputs[0]) == std::vector<uint8_t>{1, 0, 1});
  }
  SUBCASE("UINT8 range") {
    auto req = parseInferRequest(oneInput("UINT8", "[2]", "[0,255]"));
    REQUIRE(req.ok());
    CHECK(req->inputs[0].datatype == DataType::kUint8);
    CHECK(values<uint8_t>(req->inputs[0]) == std::vector<uint8_t>{0, 255});
  }
  SUBCASE("INT8 range") {
    auto req = parseInferRequest(oneInput("INT8", "[2]", "[-128,127]"));
    REQUIRE(req.ok());
    CHECK(values<int8_t>(req->inputs[0]) == std::vector<int8_t>{-128, 127});
  }
  SUBCASE("UINT64 above INT64_MAX") {
    auto req = parseInferRequest(oneInput("UINT64", "[1]", "[18446744073709551615]"));
    REQUIRE(req.ok());
    CHECK(values<uint64_t>(req->inputs[0]) ==
          std::vector<uint64_t>{std::numeric_limits<uint64_t>::max()});
  }
  SUBCASE("FP64 keeps double precision") {
    auto req = parseInferRequest(oneInput("FP64", "[1]", "[0.1]"));
    REQUIRE(req.ok());
    CHECK(values<double>(req->inputs[0]) == std::vector<double>{0.1});
  }
  SUBCASE("a scalar: empty shape, bare value") {
    auto req = parseInferRequest(oneInput("INT32", "[]", "7"));
    REQUIRE(req.ok());
    CHECK(req->inputs[0].shape.empty());
    CHECK(values<int32_t>(req->inputs[0]) == std::vector<int32_t>{7});
  }
  SUBCASE("a zero-size tensor") {
    auto req = parseInferRequest(oneInput("FP32", "[0,3]", "[]"));
    REQUIRE(req.ok());
    CHECK(req->inputs[0].shape == std::vector<int64_t>{0, 3});
    CHECK(req->inputs[0].data.empty());
  }
}

TEST_CASE("parseInferRequest: several inputs and requested outputs") {
  auto req = parseInferRequest(R"({
    "inputs": [
      {"name": "a", "datatype": "INT32", "shape": [1], "data": [5]},
      {"name": "b", "datatype": "FP32", "shape": [2], "data": [0.5, -1], "parameters": {}}
    ],
    "outputs": [{"name": "b"}, {"name": "a", "parameters": {"binary_data": false}}]
  })");
  REQUIRE(req.ok());
  CHECK(req->id.empty());
  REQUIRE(req->inputs.size() == 2);
  CHECK(req->inputs[0].name == "a");
  CHECK(values<int32_t>(req->inputs[0]) == std::vector<int32_t>{5});
  CHECK(req->inputs[1].name == "b");
  CHECK(values<float>(req->inputs[1]) == std::vector<float>{0.5f, -1.0f});
  CHECK(req->requested_outputs == std::vector<std::string>{"b", "a"});

  auto empty_outputs = parseInferRequest(
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"outputs":[]})");
  REQUIRE(empty_outputs.ok());
  CHECK(empty_outputs->requested_outputs.empty());
}

TEST_CASE("parseInferRequest rejects malformed requests with a message naming the field") {
  const std::string kOutputs = R"(outputs: expected an array of {"name": ...} objects)";
  const std::string kShape = "input 'x': shape: expected an array of non-negative integers";
  const std::string kInputs = "inputs: expected a non-empty array of tensors";
  const std::string x = R"({"name":"x","datatype":"FP32","shape":[1],"data":[1]})";
  struct Case {
    std::string body;
    std::string message;
  };
  const std::vector<Case> cases = {
      // The body as a whole.
      {"", "malformed JSON body"},
      {"{", "malformed JSON body"},
      {R"({"inputs":[)" + x + "],}", "malformed JSON body"},
      {"not json", "malformed JSON body"},
      {"[1,2]", R"(the body must be a JSON object with an "inputs" array)"},
      {"3", R"(the body must be a JSON object with an "inputs" array)"},
      {"{}", kInputs},
      {R"({"inputs":[]})", kInputs},
      {R"({"inputs":{}})", kInputs},
      {R"({"inputs":"x"})", kInputs},
      {R"({"id":5,"inputs":[)" + x + "]}", "id: expected a string"},
      // One tensor.
      {R"({"inputs":[5]})", "inputs[0]: expected an object"},
      {R"({"inputs":[)" + x + R"(,{"datatype":"FP32","shape":[1],"data":[1]}]})",
       "inputs[1].name: expected a non-empty string"},
      {R"({"inputs":[{"name":"","datatype":"FP32","shape":[1],"data":[1]}]})",
       "inputs[0].name: expected a non-empty string"},
      {R"({"inputs":[{"name":7,"datatype":"FP32","shape":[1],"data":[1]}]})",
       "inputs[0].name: expected a non-empty string"},
      {R"({"inputs":[{"name":"x","shape":[1],"data":[1]}]})",
       R"(input 'x': datatype: expected a string such as "FP32")"},
      {oneInput("FLOAT32", "[1]", "[1]"),
       "input 'x': datatype 'FLOAT32' is not supported (BOOL, UINT8-64, INT8-64, FP32, FP64)"},
      {oneInput("fp32", "[1]", "[1]"),
       "input 'x': datatype 'fp32' is not supported (BOOL, UINT8-64, INT8-64, FP32, FP64)"},
      {oneInput("BYTES", "[1]", R"(["a"])"),
       "input 'x': datatype 'BYTES' is not supported (BOOL, UINT8-64, INT8-64, FP32, FP64)"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","data":[1]}]})", kShape},
      {oneInput("FP32", "2", "[1,2]"), kShape},
      {oneInput("FP32", "[-1]", "[1]"), kShape},
      {oneInput("FP32", "[2,-2]", "[1]"), kShape},
      {oneInput("FP32", "[2.0]", "[1,2]"), kShape},
      {oneInput("FP32", R"(["2"])", "[1,2]"), kShape},
      {oneInput("FP32", "[100000,100000]", "[]"),
       "input 'x': shape describes more than 2^31 elements"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]})",
       "input 'x': data: missing (or parameters.binary_data_size for binary data)"},
      // Element count.
      {oneInput("FP32", "[2,2]", "[1,2,3]"),
       "input 'x': shape [2,2] has 4 elements but data has 3"},
      {oneInput("FP32", "[2,2]", "[[1,2],[3,4],[5]]"),
       "input 'x': shape [2,2] has 4 elements but data has 5"},
      {oneInput("FP32", "[1]", "[]"), "input 'x': shape [1] has 1 elements but data has 0"},
      // A count the data cannot back is refused without allocating for it.
      {oneInput("FP32", "[2147483647]", "[1]"),
       "input 'x': shape [2147483647] has 2147483647 elements but data has 1"},
      {oneInput("FP32", "[1]", nested(33, "1")), "input 'x': data is nested too deeply"},
      // Element values.
      {oneInput("INT8", "[2]", "[1,128]"), "input 'x': data[1] = 128 is not a valid INT8"},
      {oneInput("INT8", "[1]", "[-129]"), "input 'x': data[0] = -129 is not a valid INT8"},
      {oneInput("UINT8", "[1]", "[256]"), "input 'x': data[0] = 256 is not a valid UINT8"},
      {oneInput("UINT8", "[1]", "[-1]"), "input 'x': data[0] = -1 is not a valid UINT8"},
      {oneInput("INT64", "[1]", "[9223372036854775808]"),
       "input 'x': data[0] = 9223372036854775808 is not a valid INT64"},
      {oneInput("INT32", "[1]", "[1.5]"), "input 'x': data[0] = 1.5 is not a valid INT32"},
      {oneInput("INT32", "[1]", "[1.0]"), "input 'x': data[0] = 1.0 is not a valid INT32"},
      {oneInput("INT32", "[1]", "[true]"), "input 'x': data[0] = true is not a valid INT32"},
      {oneInput("FP32", "[2]", R"([1,"1.0"])"),
       R"(input 'x': data[1] = "1.0" is not a valid FP32)"},
      {oneInput("FP32", "[1]", "[true]"), "input 'x': data[0] = true is not a valid FP32"},
      {oneInput("FP32", "[1]", "[null]"), "input 'x': data[0] = null is not a valid FP32"},
      {oneInput("FP32", "[1]", R"([{"v":1}])"),
       "input 'x': data[0] = an object is not a valid FP32"},
      {oneInput("BOOL", "[1]", "[1]"), "input 'x': data[0] = 1 is not a valid BOOL"},
      // Nested data must follow the shape, not just have as many elements.
      {oneInput("FP32", "[2,2]", "[[1,2,3],[4]]"),
       "input 'x': nested data does not follow shape [2,2]"},
      {oneInput("FP32", "[2,2]", "[[1,2],3,4]"),
       "input 'x': nested data does not follow shape [2,2]"},
      {oneInput("FP32", "[4]", "[[1,2],[3,4]]"),
       "input 'x': nested data does not follow shape [4]"},
      // Requested outputs.
      {R"({"inputs":[)" + x + R"(],"outputs":{}})", kOutputs},
      {R"({"inputs":[)" + x + R"(],"outputs":["x"]})", kOutputs},
      {R"({"inputs":[)" + x + R"(],"outputs":[{"name":1}]})", kOutputs},
      {R"({"inputs":[)" + x + R"(],"outputs":[{}]})", kOutputs},
  };
  for (const Case& c : cases) {
    CAPTURE(c.body);
    StatusOr<InferRequest> req = parseInferRequest(c.body);
    REQUIRE_FALSE(req.ok());
    CHECK(req.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(req.status().message()) == c.message);
  }
}

TEST_CASE("parseInferRequest accepts data nested up to 32 levels deep") {
  std::string shape = "[1";
  for (int i = 1; i < 32; ++i) {
    shape += ",1";
  }
  shape += "]";
  auto req = parseInferRequest(oneInput("FP32", shape, nested(32, "1")));
  REQUIRE(req.ok());
  CHECK(values<float>(req->inputs[0]) == std::vector<float>{1.0f});
}

TEST_CASE("inferResponseJson writes the exact response body") {
  const Tensor fp32 = tensor<float>("y", DataType::kFp32, {3}, {1.0f, 2.5f, 0.1f});
  struct Case {
    std::string name;
    InferResponse response;
    std::string json;
  };
  const std::vector<Case> cases = {
      {"FP32 prints the shortest form that reads back",
       {"r1", "m", {fp32}},
       R"({"model_name":"m","id":"r1","outputs":[{"name":"y","datatype":"FP32","shape":[3],)"
       R"("data":[1,2.5,0.1]}]})"},
      {"no id, no id field",
       {"", "m", {fp32}},
       R"({"model_name":"m","outputs":[{"name":"y","datatype":"FP32","shape":[3],)"
       R"("data":[1,2.5,0.1]}]})"},
      {"BOOL and INT32 tensors, in order",
       {"r2",
        "m",
        {tensor<uint8_t>("b", DataType::kBool, {3}, {1, 0, 1}),
         tensor<int32_t>("i", DataType::kInt32, {1, 3}, {-2147483647 - 1, 0, 7})}},
       R"({"model_name":"m","id":"r2","outputs":[)"
       R"({"name":"b","datatype":"BOOL","shape":[3],"data":[true,false,true]},)"
       R"({"name":"i","datatype":"INT32","shape":[1,3],"data":[-2147483648,0,7]}]})"},
      {"INT8 and UINT8 print as numbers, not characters",
       {"",
        "m",
        {tensor<int8_t>("s", DataType::kInt8, {2}, {-5, 65}),
         tensor<uint8_t>("u", DataType::kUint8, {2}, {255, 65})}},
       R"({"model_name":"m","outputs":[)"
       R"({"name":"s","datatype":"INT8","shape":[2],"data":[-5,65]},)"
       R"({"name":"u","datatype":"UINT8","shape":[2],"data":[255,65]}]})"},
      {"FP64, INT64 and UINT64",
       {"",
        "m",
        {tensor<double>("d", DataType::kFp64, {2}, {0.1, -1e300}),
         tensor<int64_t>("l", DataType::kInt64, {1}, {std::numeric_limits<int64_t>::min()}),
         tensor<uint64_t>("ul", DataType::kUint64, {1}, {std::numeric_limits<uint64_t>::max()})}},
       R"({"model_name":"m","outputs":[)"
       R"({"name":"d","datatype":"FP64","shape":[2],"data":[0.1,-1e+300]},)"
       R"({"name":"l","datatype":"INT64","shape":[1],"data":[-9223372036854775808]},)"
       R"({"name":"ul","datatype":"UINT64","shape":[1],"data":[18446744073709551615]}]})"},
      {"NaN and infinities become null",
       {"",
        "m",
        {tensor<float>(
             "f", DataType::kFp32, {3},
             {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
              -std::numeric_limits<float>::infinity()}),
         tensor<double>("d", DataType::kFp64, {1}, {std::numeric_limits<double>::quiet_NaN()})}},
       R"({"model_name":"m","outputs":[)"
       R"({"name":"f","datatype":"FP32","shape":[3],"data":[null,null,null]},)"
       R"({"name":"d","datatype":"FP64","shape":[1],"data":[null]}]})"},
      {"no outputs, empty tensor, scalar shape",
       {"",
        "m",
        {tensor<float>("e", DataType::kFp32, {0}, {}),
         tensor<float>("s", DataType::kFp32, {}, {3.0f})}},
       R"({"model_name":"m","outputs":[)"
       R"({"name":"e","datatype":"FP32","shape":[0],"data":[]},)"
       R"({"name":"s","datatype":"FP32","shape":[],"data":[3]}]})"},
      {"empty outputs", {"", "m", {}}, R"({"model_name":"m","outputs":[]})"},
      {"strings are escaped",
       {"a\"b\\c\n", "m\"", {tensor<float>("y\"", DataType::kFp32, {1}, {1.0f})}},
       R"({"model_name":"m\"","id":"a\"b\\c\n","outputs":[)"
       R"({"name":"y\"","datatype":"FP32","shape":[1],"data":[1]}]})"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const std::string out = inferResponseJson(c.response);
    CHECK(out == c.json);
    CHECK(nlohmann::json::accept(out));
  }
}

TEST_CASE("a parsed request echoed through inferResponseJson reads back the same values") {
  auto req = parseInferRequest(oneInput("FP32", "[2,3]", "[[0.1,0.2,0.3],[1e-7,3.4e38,-0]]"));
  REQUIRE(req.ok());
  InferResponse resp{"id", "m", req->inputs};
  auto j = nlohmann::json::parse(inferResponseJson(resp));
  std::vector<float> back;
  for (const auto& v : j["outputs"][0]["data"]) {
    back.push_back(static_cast<float>(v.get<double>()));
  }
  CHECK(back == values<float>(req->inputs[0]));
  CHECK(j["outputs"][0]["shape"] == nlohmann::json::array({2, 3}));
}

// The raw little-endian bytes of `data`, as a binary tensor data body carries them.
template <typename T>
std::string bytesOf(const std::vector<T>& data) {
  return std::string(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(T));
}

TEST_CASE("parseInferBody: binary inputs come from after the JSON, in input order") {
  const std::string json =
      R"({"id":"b1","inputs":[)"
      R"({"name":"x","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}},)"
      R"({"name":"y","datatype":"INT32","shape":[2],"data":[7,-7]},)"
      R"({"name":"z","datatype":"UINT8","shape":[3],"parameters":{"binary_data_size":3}}]})";
  const std::string body = json + bytesOf<float>({0.5f, -2.25f}) + bytesOf<uint8_t>({0, 200, 255});
  auto parsed = parseInferBody(body, json.size());
  REQUIRE_MESSAGE(parsed.ok(), messageOf(parsed.status()));
  const InferRequest& req = parsed->request;
  CHECK(req.id == "b1");
  REQUIRE(req.inputs.size() == 3);
  CHECK(req.inputs[0].shape == std::vector<int64_t>{1, 2});
  CHECK(values<float>(req.inputs[0]) == std::vector<float>{0.5f, -2.25f});
  CHECK(values<int32_t>(req.inputs[1]) == std::vector<int32_t>{7, -7});
  CHECK(values<uint8_t>(req.inputs[2]) == std::vector<uint8_t>{0, 200, 255});
  CHECK_FALSE(parsed->encoding.all_binary);
  CHECK_FALSE(parsed->encoding.binary("anything"));

  // A header equal to the body's length: all JSON, no binary part.
  auto plain =
      parseInferBody(oneInput("FP32", "[1]", "[1.5]"), oneInput("FP32", "[1]", "[1.5]").size());
  REQUIRE(plain.ok());
  CHECK(values<float>(plain->request.inputs[0]) == std::vector<float>{1.5f});
  // An empty tensor takes zero bytes.
  const std::string empty =
      R"({"inputs":[{"name":"e","datatype":"FP32","shape":[0],"parameters":{"binary_data_size":0}}]})";
  auto zero = parseInferBody(empty, empty.size());
  REQUIRE(zero.ok());
  CHECK(zero->request.inputs[0].data.empty());
}

TEST_CASE("parseInferBody: which outputs the response sends as binary") {
  const std::string inputs = R"("inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}])";
  struct Case {
    std::string name;
    std::string json;
    std::vector<std::pair<std::string, bool>> want;  // output -> binary?
  };
  const std::vector<Case> cases = {
      {"nothing asked: JSON", "{" + inputs + "}", {{"a", false}, {"b", false}}},
      {"binary_data_output: every output",
       R"({"parameters":{"binary_data_output":true},)" + inputs + "}",
       {{"a", true}, {"b", true}}},
      {"per output",
       "{" + inputs +
           R"(,"outputs":[{"name":"a","parameters":{"binary_data":true}},{"name":"b"}]})",
       {{"a", true}, {"b", false}}},
      {"binary_data false overrides binary_data_output",
       R"({"parameters":{"binary_data_output":true},)" + inputs +
           R"(,"outputs":[{"name":"a","parameters":{"binary_data":false}},{"name":"b"}]})",
       {{"a", false}, {"b", true}}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto parsed = parseInferBody(c.json, std::nullopt);
    REQUIRE_MESSAGE(parsed.ok(), messageOf(parsed.status()));
    for (const auto& want : c.want) {
      const auto& [output, binary] = want;
      CAPTURE(want.first);
      CHECK(parsed->encoding.binary(output) == binary);
    }
  }
}

TEST_CASE("parseInferBody rejects malformed binary requests, naming the input and the bytes") {
  const std::string x8 =
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]})";
  const std::string floats = bytesOf<float>({1.0f, 2.0f});
  struct Case {
    std::string name;
    std::string body;
    std::optional<size_t> json_length;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"header larger than the body", x8, x8.size() + 1,
       "Inference-Header-Content-Length " + std::to_string(x8.size() + 1) + " exceeds the body's " +
           std::to_string(x8.size()) + " bytes"},
      {"binary_data_size without the header", x8, std::nullopt,
       "input 'x': parameters.binary_data_size needs the Inference-Header-Content-Length header "
       "(the size of the JSON part of the body)"},
      {"header cutting the JSON short", x8 + floats, x8.size() - 1, "malformed JSON body"},
      {"binary data shorter than the input", x8 + floats.substr(0, 4), x8.size(),
       "input 'x': binary_data_size 8 runs past the end of the body (4 bytes of binary data "
       "left)"},
      {"bytes no input claims", x8 + floats + "!!", x8.size(),
       "the body has 2 bytes of binary data that no input claims (the inputs' binary_data_size "
       "add up to 8)"},
      {"size that does not match the shape",
       R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":6}}]})" +
           floats.substr(0, 6),
       x8.size(), "input 'x': binary_data_size 6 does not match FP32 [2] (8 bytes)"},
      {"data and binary_data_size both",
       R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[1,2],"parameters":{"binary_data_size":8}}]})",
       std::nullopt, "input 'x': has both data and parameters.binary_data_size; send one"},
      {"negative size",
       R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":-8}}]})",
       std::nullopt, "input 'x': parameters.binary_data_size: expected a non-negative integer"},
      {"size as a string",
       R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":"8"}}]})",
       std::nullopt, "input 'x': parameters.binary_data_size: expected a non-negative integer"},
      {"input parameters not an object",
       R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":[]}]})", std::nullopt,
       "input 'x': parameters: expected an object"},
      {"neither data nor binary data", R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2]}]})",
       std::nullopt, "input 'x': data: missing (or parameters.binary_data_size for binary data)"},
      {"binary_data_output not a boolean",
       R"({"parameters":{"binary_data_output":1},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})",
       std::nullopt, "parameters.binary_data_output: expected true or false"},
      {"binary_data not a boolean",
       R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"outputs":[{"name":"y","parameters":{"binary_data":"yes"}}]})",
       std::nullopt, "outputs[0].parameters.binary_data: expected true or false"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto parsed = parseInferBody(c.body, c.json_length);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(messageOf(parsed.status()) == c.message);
  }
}

TEST_CASE("encodeInferResponse: binary outputs follow the JSON, whose length it reports") {
  InferResponse resp{"r",
                     "m",
                     {tensor<float>("p", DataType::kFp32, {1, 2}, {0.25f, 0.75f}),
                      tensor<int32_t>("k", DataType::kInt32, {1}, {3})}};
  ResponseEncoding encoding;
  encoding.binary_outputs = {"p"};
  EncodedResponse out = encodeInferResponse(resp, encoding);
  const std::string json =
      R"({"model_name":"m","id":"r","outputs":[)"
      R"({"name":"p","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}},)"
      R"({"name":"k","datatype":"INT32","shape":[1],"data":[3]}]})";
  REQUIRE(out.json_length.has_value());
  CHECK(*out.json_length == json.size());
  CHECK(out.body == json + bytesOf<float>({0.25f, 0.75f}));

  encoding.all_binary = true;  // both, in output order
  out = encodeInferResponse(resp, encoding);
  const std::string both_json =
      R"({"model_name":"m","id":"r","outputs":[)"
      R"({"name":"p","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}},)"
      R"({"name":"k","datatype":"INT32","shape":[1],"parameters":{"binary_data_size":4}}]})";
  REQUIRE(out.json_length.has_value());
  CHECK(*out.json_length == both_json.size());
  CHECK(out.body == both_json + bytesOf<float>({0.25f, 0.75f}) + bytesOf<int32_t>({3}));

  // No binary output: plain JSON and no length.
  out = encodeInferResponse(resp, ResponseEncoding{});
  CHECK_FALSE(out.json_length.has_value());
  CHECK(out.body == inferResponseJson(resp));
}

TEST_CASE("binary in, binary out: a parsed request echoed back keeps every bit") {
  const std::vector<float> x = {0.1f, std::numeric_limits<float>::denorm_min(), -0.0f,
                                std::numeric_limits<float>::quiet_NaN()};
  const std::string json =
      R"({"parameters":{"binary_data_output":true},"inputs":[{"name":"x","datatype":"FP32",)"
      R"("shape":[2,2],"parameters":{"binary_data_size":16}}]})";
  auto parsed = parseInferBody(json + bytesOf(x), json.size());
  REQUIRE(parsed.ok());
  EncodedResponse out =
      encodeInferResponse(InferResponse{"", "m", parsed->request.inputs}, parsed->encoding);
  REQUIRE(out.json_length.has_value());
  CHECK(out.body.substr(*out.json_length) == bytesOf(x));  // NaN and -0 survive, unlike JSON
}

TEST_CASE("errorJson quotes and escapes the message") {
  struct Case {
    std::string message;
    std::string json;
  };
  const std::vector<Case> cases = {
      {"boom", R"({"error":"boom"})"},
      {"", R"({"error":""})"},
      {R"(input 'x': datatype "FP32")", R"({"error":"input 'x': datatype \"FP32\""})"},
      {"back\\slash\nnew\ttab", R"({"error":"back\\slash\nnew\ttab"})"},
      {std::string("nul\0byte", 8), R"({"error":"nul\u0000byte"})"},
      {"caf\xc3\xa9", "{\"error\":\"caf\xc3\xa9\"}"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.message);
    CHECK(errorJson(c.message) == c.json);
  }
}

TEST_CASE("errorJson does not throw on bytes that are not UTF-8") {
  // Error messages quote what the client sent, e.g. the model name from a percent-decoded URL
  // path (/v2/models/%FF): invalid UTF-8 must not escape as a json::type_error.
  std::string out;
  CHECK_NOTHROW(out = errorJson("Unknown model '\xff'"));
  CHECK(out == "{\"error\":\"Unknown model '\xef\xbf\xbd'\"}");
  CHECK(nlohmann::json::accept(out));
}

TEST_CASE("modelMetadataJson describes the model") {
  ModelMetadata m;
  m.name = "mlp";
  m.platform = "serve-mlp";
  m.backend = "cuda";
  m.versions = {"1", "2"};
  m.inputs = {{"x", DataType::kFp32, {-1, 4}}};
  m.outputs = {{"y", DataType::kInt64, {-1, 1}}, {"z", DataType::kBool, {}}};

  const std::string text = modelMetadataJson(m);
  CAPTURE(text);
  auto j = nlohmann::json::parse(text);
  CHECK(j["name"] == "mlp");
  CHECK(j["platform"] == "serve-mlp");
  CHECK(j["versions"] == nlohmann::json::array({"1", "2"}));
  CHECK(j["parameters"] == nlohmann::json{{"backend", "cuda"}});
  CHECK(j["inputs"] == nlohmann::json::parse(R"([{"name":"x","datatype":"FP32","shape":[-1,4]}])"));
  CHECK(j["outputs"] == nlohmann::json::parse(R"([{"name":"y","datatype":"INT64","shape":[-1,1]},)"
                                              R"({"name":"z","datatype":"BOOL","shape":[]}])"));
  CHECK(j.size() == 6);

  // A model that takes anything still lists (empty) inputs and outputs.
  ModelMetadata any;
  any.name = "noop";
  auto k = nlohmann::json::parse(modelMetadataJson(any));
  CHECK(k["inputs"] == nlohmann::json::array());
  CHECK(k["outputs"] == nlohmann::json::array());
  CHECK(k["versions"] == nlohmann::json::array());
}

}  // namespace
}  // namespace serve
