// The example digits MLP end to end through a real replica, and refusals of bad weight files.
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
