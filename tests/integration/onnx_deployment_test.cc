// kind: onnx end to end: examples/onnx.yaml on a node the manager runs (the digits classifier
// as models/digits.onnx through ONNX Runtime, next to the same weights in kind: mlp), and a
// replica alone for the files that cannot be loaded. ONNX Runtime comes from scripts/setup.sh
// (.tools/onnxruntime); without it these tests skip and say so.
#include "tests/integration/grpc_fixture.h"
#include "tests/integration/manager_fixture.h"
#include "tests/integration/replica_fixture.h"
#include "tests/support/digits.h"
#include "tests/support/json_file.h"

namespace serve::testing {
namespace {

const std::string kSourceDir = SERVE_SOURCE_DIR;

std::map<std::string, std::string> pythonEnv() { return {{"SERVE_PYTHON", SERVE_TEST_PYTHON}}; }

// False, with a message that CTest turns into "Skipped", when the worker's Python cannot import
// onnxruntime the way haproxy_serve.onnx looks for it.
bool onnxRuntimeAvailable() {
  const auto [code, output] =
      runShell("PYTHONPATH='" + kSourceDir + "/python' " + SERVE_TEST_PYTHON +
               " -c 'from haproxy_serve import onnx; "
               "onnx.import_onnxruntime()' 2>&1");
  if (code != 0) {
    MESSAGE(
        "!!!!! onnxruntime is not importable (scripts/setup.sh installs it into "
        ".tools/onnxruntime; it needs network access): this test is SKIPPED\n",
        output);
    return false;
  }
  return true;
}

std::vector<float> floatsOf(const nlohmann::json& values) {
  std::vector<float> out;
  for (const auto& v : values) {
    out.push_back(v.get<float>());
  }
  return out;
}

TEST_CASE("node: examples/onnx.yaml serves the ONNX digits as kind mlp does, over HTTP and gRPC") {
  if (!onnxRuntimeAvailable()) {
    return;
  }
  auto m = startNode("", kSourceDir + "/examples/onnx.yaml", pythonEnv());
  REQUIRE(eventually(
      [&] { return allServing(*m, "digits_onnx", 1) && allServing(*m, "digits_mlp", 1); },
      std::chrono::seconds(30)));
  const std::string base = "http://127.0.0.1:8000";  // the port the example config names
  const nlohmann::json heldout = readJson(kSourceDir + "/models/digits.json")["heldout"];
  REQUIRE(heldout.size() == 20);

  // The metadata comes from the graph's inputs and outputs; the batch dimension is dynamic.
  const HttpResult metadata = httpGet(base + "/v2/models/digits_onnx");
  CHECK(metadata.status == 200);
  CHECK(metadata.body ==
        R"({"inputs":[{"datatype":"FP32","name":"input","shape":[-1,64]}],"name":"digits_onnx",)"
        R"("outputs":[{"datatype":"FP32","name":"probabilities","shape":[-1,10]}],)"
        R"("parameters":{"backend":"python"},"platform":"serve-python","versions":["1"]})");

  // KServe HTTP JSON, all 20 at once so that the batcher stacks them into shared runs.
  const double onnx_worst = checkHeldOut(base + "/v2/models/digits_onnx/infer", heldout);
  CHECK(onnx_worst < 1e-4);
  const double mlp_worst = checkHeldOut(base + "/v2/models/digits_mlp/infer", heldout);
  CHECK(mlp_worst < 1e-4);

  // One by one, each answer is compared with kind mlp's for the same sample.
  auto stub = inferenceStub(9000);
  for (size_t i = 0; i < heldout.size(); ++i) {
    CAPTURE(i);
    const std::string body = inferBodyFor(heldout[i]["inputs"]);
    const HttpResult onnx = httpPost(base + "/v2/models/digits_onnx/infer", body);
    const HttpResult mlp = httpPost(base + "/v2/models/digits_mlp/infer", body);
    REQUIRE(onnx.status == 200);
    REQUIRE(mlp.status == 200);
    const auto onnx_reply = nlohmann::json::parse(onnx.body);
    CHECK(onnx_reply["model_name"] == "digits_onnx");
    const nlohmann::json& onnx_out = onnx_reply["outputs"][0];
    CHECK(onnx_out["name"] == "probabilities");
    CHECK(onnx_out["datatype"] == "FP32");
    CHECK(onnx_out["shape"] == nlohmann::json::array({1, 10}));
    const nlohmann::json mlp_probs = nlohmann::json::parse(mlp.body)["outputs"][0]["data"];
    CHECK(argmax(onnx_out["data"]) == argmax(mlp_probs));
    CHECK(argmax(onnx_out["data"]) == heldout[i]["predicted"].get<int>());

    // gRPC through HAProxy's :9000, the application picked by metadata, raw tensor bytes.
    const InferResult reply =
        infer(*stub, rawRequest("digits_onnx", floatsOf(heldout[i]["inputs"]), {1, 64}, "input"),
              std::chrono::seconds(10), {{"application", "digits_onnx"}});
    INFO(reply.status.error_message());
    REQUIRE(reply.status.ok());
    REQUIRE(reply.response.raw_output_contents_size() == 1);
    const std::vector<float> probabilities = rawFloats(reply.response.raw_output_contents(0));
    REQUIRE(probabilities.size() == 10);
    const std::vector<double> want = heldout[i]["probabilities"].get<std::vector<double>>();
    for (size_t c = 0; c < 10; ++c) {
      CAPTURE(c);
      CHECK(std::abs(probabilities[c] - want[c]) < 1e-4);
    }
    CHECK(std::max_element(probabilities.begin(), probabilities.end()) - probabilities.begin() ==
          argmax(mlp_probs));
  }

  // Several samples in one request are one run; a wrong shape is refused before the model.
  nlohmann::json two_rows = heldout[0]["inputs"];
  for (const auto& v : heldout[1]["inputs"]) {
    two_rows.push_back(v);
  }
  const HttpResult batch = httpPost(
      base + "/v2/models/digits_onnx/infer",
      nlohmann::json{
          {"inputs",
           {{{"name", "input"}, {"shape", {2, 64}}, {"datatype", "FP32"}, {"data", two_rows}}}}}
          .dump());
  REQUIRE(batch.status == 200);
  const nlohmann::json batch_out = nlohmann::json::parse(batch.body)["outputs"][0];
  CHECK(batch_out["shape"] == nlohmann::json::array({2, 10}));
  const std::vector<double> rows = batch_out["data"].get<std::vector<double>>();
  REQUIRE(rows.size() == 20);
  CHECK(std::max_element(rows.begin(), rows.begin() + 10) - rows.begin() ==
        heldout[0]["predicted"].get<int>());
  CHECK(std::max_element(rows.begin() + 10, rows.end()) - rows.begin() - 10 ==
        heldout[1]["predicted"].get<int>());

  // The route prefix takes KServe v2 JSON too, as kind mlp's does.
  const HttpResult routed = httpPost(base + "/digits-onnx", inferBodyFor(heldout[0]["inputs"]));
  CHECK(routed.status == 200);
  const auto routed_reply = nlohmann::json::parse(routed.body);
  CHECK(routed_reply["model_name"] == "digits_onnx");
  CHECK(argmax(routed_reply["outputs"][0]["data"]) == heldout[0]["predicted"].get<int>());
}

TEST_CASE("onnx replica: a missing or corrupt model file stops the start, naming the file") {
  if (!onnxRuntimeAvailable()) {
    return;
  }
  TempDir dir;
  const std::string missing = dir.path() + "/missing.onnx";
  const std::string corrupt = dir.write("corrupt.onnx", "this is not an ONNX graph");
  struct Case {
    std::string path;
    std::string message;
  };
  for (const Case& c :
       {Case{missing, "FileNotFoundError: ONNX model " + missing + ": no such file"},
        Case{corrupt, "ValueError: ONNX model " + corrupt +
                          " cannot be loaded: [ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load "
                          "model from " +
                          corrupt + " failed:Protobuf parsing failed."}}) {
    CAPTURE(c.path);
    ReplicaOptions o;
    o.config_yaml =
        "applications:\n"
        "  - name: app\n"
        "    route_prefix: /digits\n"
        "    deployments:\n"
        "      - {name: d, model: {kind: onnx, name: digits, path: " +
        c.path + "}}\n";
    o.env = pythonEnv();
    ReplicaProcess r(o);
    CHECK_FALSE(r.start(std::chrono::seconds(20)));
    const std::optional<int> code = r.wait(std::chrono::seconds(5));
    REQUIRE(code.has_value());
    CHECK(*code == 1);
    INFO(r.output());
    CHECK(r.output().find("model 'digits': haproxy_serve.onnx:build_app: " + c.message) !=
          std::string::npos);
  }
}

}  // namespace
}  // namespace serve::testing
