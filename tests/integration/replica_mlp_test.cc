// The example digits MLP end to end through a real replica, and refusals of bad weight files.
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/integration/replica_fixture.h"
#include "tests/support/digits.h"
#include "tests/support/json_file.h"
#include "tests/support/safetensors_writer.h"

using namespace serve::testing;

TEST_CASE("digits: the replica's predictions match the training script's on held-out samples") {
  nlohmann::json expected = readJson(std::string(SERVE_SOURCE_DIR) + "/models/digits.json");
  const auto& heldout = expected["heldout"];
  REQUIRE(heldout.size() >= 10);
  ReplicaOptions o;
  o.config_yaml = digitsConfig(digitsPath(), 8);
  ReplicaProcess r(o);
  REQUIRE(r.start());

  auto meta = nlohmann::json::parse(httpGet(r.url("/v2/models/digits")).body);
  CHECK(meta["inputs"][0]["shape"] == nlohmann::json::array({-1, 64}));
  CHECK(meta["outputs"][0]["shape"] == nlohmann::json::array({-1, 10}));
  CHECK(meta["parameters"]["backend"] == "cpu");

  // Sent concurrently so that batches of several samples form.
  CHECK(checkHeldOut(r.url("/digits"), heldout) < 1e-4);
  CHECK(metric(r, series("serve_model_requests_total")) == static_cast<double>(heldout.size()));
}

TEST_CASE("digits: a bad request in a batch fails alone, with the expected shape in the message") {
  ReplicaOptions o;
  o.config_yaml = digitsConfig(digitsPath(), 16);
  ReplicaProcess r(o);
  REQUIRE(r.start());
  nlohmann::json short_row = std::vector<double>(63, 0.0);
  checkOneBadFailsAlone(
      r.url("/v2/models/digits/infer"),
      nlohmann::json{
          {"inputs",
           {{{"name", "input"}, {"shape", {1, 63}}, {"datatype", "FP32"}, {"data", short_row}}}}}
          .dump(),
      R"({"error":"input 'input': expected FP32 with shape [-1, 64], got FP32 [1, 63]"})");
  CHECK(metric(r, series("serve_model_requests_total")) == 7);
}

TEST_CASE("digits: bad weight files are refused before any port is bound") {
  std::vector<float> w(4 * 2, 0.5f), b(4, 0.0f), w2(2 * 4, 0.1f), b2(2, 0.0f);
  std::vector<float> nan_w = w;
  nan_w[5] = std::nanf("");
  struct Case {
    std::string name;
    std::string bytes;
    std::string message;
  };
  std::vector<Case> cases = {
      {"NaN in weights",
       makeSafetensors(
           {f32Tensor("layers.0.weight", {4, 2}, nan_w), f32Tensor("layers.0.bias", {4}, b)}),
       "tensor 'layers.0.weight': element 5 is NaN"},
      {"shapes that do not chain",
       makeSafetensors({f32Tensor("layers.0.weight", {4, 2}, w), f32Tensor("layers.0.bias", {4}, b),
                        f32Tensor("layers.1.weight", {2, 3}, std::vector<float>(6, 0.1f)),
                        f32Tensor("layers.1.bias", {2}, b2)}),
       "layers.1.weight has 3 inputs but layers.0 has 4 outputs"},
      {"missing bias", makeSafetensors({f32Tensor("layers.0.weight", {4, 2}, w)}), "layers.0.bias"},
      {"truncated file",
       makeSafetensors(
           {f32Tensor("layers.0.weight", {4, 2}, w), f32Tensor("layers.0.bias", {4}, b)})
           .substr(0, 40),
       "model 'digits'"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    ReplicaOptions o;
    TempDir dir;
    std::string path = dir.write("bad.safetensors", c.bytes);
    o.config_yaml = digitsConfig(path, 1);
    o.pass_http_port = false;
    ReplicaProcess r(o);
    CHECK_FALSE(r.start());
    CHECK(r.wait(std::chrono::seconds(5)) == 1);
    std::string out = r.output();
    CHECK(out.find(c.message) != std::string::npos);
    CHECK(out.find("\"event\":\"ready\"") == std::string::npos);
  }
}

TEST_CASE("digits: a deployment that asks for a GPU where none is visible runs on the CPU") {
  ReplicaOptions o;
  o.config_yaml = digitsConfig(digitsPath(), 8, /*num_gpus=*/1);
  o.env = {{"CUDA_VISIBLE_DEVICES", ""}};  // hide any device this machine might have
  ReplicaProcess r(o);
  REQUIRE(r.start());
  auto meta = nlohmann::json::parse(httpGet(r.url("/v2/models/digits")).body);
  CHECK(meta["parameters"]["backend"] == "cpu");
  CHECK(metric(r, series("serve_model_backend_info", "backend=\"cpu\"")) == 1);
  CHECK(r.output().find("asks for a GPU") != std::string::npos);
  nlohmann::json zeros = std::vector<double>(64, 0.0);
  CHECK(httpPost(r.url("/digits"), inferBodyFor(zeros)).status == 200);
}

TEST_CASE("digits: binary tensor data in and out gives the JSON answer bit for bit") {
  nlohmann::json expected = readJson(std::string(SERVE_SOURCE_DIR) + "/models/digits.json");
  const auto pixels = expected["heldout"][0]["inputs"].get<std::vector<float>>();
  REQUIRE(pixels.size() == 64);
  ReplicaOptions o;
  o.config_yaml = digitsConfig(digitsPath(), 1);
  ReplicaProcess r(o);
  REQUIRE(r.start());
  const std::string url = r.url("/v2/models/digits/infer");

  HttpResult as_json = httpPost(url, inferBodyFor(pixels));
  REQUIRE(as_json.status == 200);
  const nlohmann::json json_answer = nlohmann::json::parse(as_json.body);
  std::vector<float> json_probs;
  for (const auto& v : json_answer["outputs"][0]["data"]) {
    json_probs.push_back(static_cast<float>(v.get<double>()));
  }
  REQUIRE(json_probs.size() == 10);

  const std::string header =
      R"({"parameters":{"binary_data_output":true},"inputs":[{"name":"input","shape":[1,64],)"
      R"("datatype":"FP32","parameters":{"binary_data_size":256}}]})";
  const std::string body =
      header + std::string(reinterpret_cast<const char*>(pixels.data()), 64 * sizeof(float));
  HttpResult as_binary =
      httpPost(url, body,
               {{"Content-Type", "application/octet-stream"},
                {"Inference-Header-Content-Length", std::to_string(header.size())}});
  REQUIRE(as_binary.status == 200);
  CHECK(as_binary.headers["content-type"] == "application/octet-stream");
  REQUIRE(as_binary.headers.count("inference-header-content-length") == 1);
  const size_t json_length = std::stoul(as_binary.headers["inference-header-content-length"]);
  REQUIRE(json_length + 40 == as_binary.body.size());
  auto answer = nlohmann::json::parse(as_binary.body.substr(0, json_length));
  CHECK(answer["outputs"][0]["name"] == "probabilities");
  CHECK(answer["outputs"][0]["shape"] == nlohmann::json::array({1, 10}));
  CHECK(answer["outputs"][0]["parameters"]["binary_data_size"] == 40);
  CHECK_FALSE(answer["outputs"][0].contains("data"));
  std::vector<float> binary_probs(10);
  std::memcpy(binary_probs.data(), as_binary.body.data() + json_length, 40);
  CHECK(binary_probs == json_probs);

  // Bad framing is refused before the model sees it, naming the header.
  HttpResult bad_header = httpPost(url, body, {{"Inference-Header-Content-Length", "12 bytes"}});
  CHECK(bad_header.status == 400);
  CHECK(
      bad_header.body ==
      R"({"error":"Inference-Header-Content-Length: expected the size of the body's JSON part in bytes, got '12 bytes'"})");
  HttpResult too_long =
      httpPost(url, body, {{"Inference-Header-Content-Length", std::to_string(body.size() + 1)}});
  CHECK(too_long.status == 400);
  CHECK(too_long.body == R"({"error":"Inference-Header-Content-Length )" +
                             std::to_string(body.size() + 1) + " exceeds the body's " +
                             std::to_string(body.size()) + R"( bytes"})");
  CHECK(metric(r, series("serve_model_requests_total")) == 2);
}
