// Clients that nobody in this project wrote, unmodified: Triton's Python clients
// (tritonclient[grpc,http] from PyPI, which scripts/setup.sh puts under .tools/tritonclient) run
// tests/integration/triton_client_check.py against a real node through HAProxy's gRPC and HTTP
// front ends. Without the package each test says so loudly and skips.
#include "tests/integration/manager_fixture.h"
#include "tests/support/json_file.h"

namespace serve::testing {
namespace {

const std::string kTritonClientDir = std::string(SERVE_SOURCE_DIR) + "/.tools/tritonclient";

// python3 from the test's PATH (the interpreter whose pip setup.sh used), seeing the Triton
// client and nothing else from .tools/. `timeout` bounds a client stuck on a wedged node.
std::string python(const std::string& args) {
  return "PYTHONPATH='" + kTritonClientDir + "' PYTHONDONTWRITEBYTECODE=1 timeout 120 python3 " +
         args;
}

// Two applications, so that a call without `application` metadata has no default to go to.
std::string twoAppConfig() {
  return "http_options: {host: 127.0.0.1, port: {{HTTP_PORT}}}\n"
         "applications:\n"
         "  - name: digits\n"
         "    route_prefix: /digits\n"
         "    deployments:\n"
         "      - {name: classifier, model: {kind: mlp, path: " SERVE_SOURCE_DIR
         "/models/digits.safetensors, name: digits}}\n"
         "  - name: echo\n"
         "    route_prefix: /echo\n"
         "    deployments:\n"
         "      - {name: noop, model: {kind: noop, name: echo}}\n";
}

// The last non-empty line of `output`.
std::string lastLine(std::string output) {
  while (!output.empty() && output.back() == '\n') {
    output.pop_back();
  }
  const std::size_t newline = output.rfind('\n');
  return newline == std::string::npos ? output : output.substr(newline + 1);
}

// triton_client_check.py's SINGLE_SAMPLES: held-out samples it also sends one at a time.
constexpr std::size_t kSingleSamples = 5;

// False (with a loud message that CTest turns into "Skipped") when tritonclient.<module> cannot
// be imported.
bool clientInstalled(const std::string& module) {
  const auto [code, output] = runShell(python("-c 'import tritonclient." + module + "'"));
  if (code != 0) {
    MESSAGE("!!!!! tritonclient[", module, "] is not importable from ", kTritonClientDir,
            " (install it with `bash scripts/setup.sh`): this test is SKIPPED !!!!!\n", output);
  }
  return code == 0;
}

const std::string kExpected = std::string(SERVE_SOURCE_DIR) + "/models/digits.json";

// Starts a node serving twoAppConfig() and runs triton_client_check.py over `protocol` ("grpc"
// or "http") against HAProxy's front end for it. Checks the last line: every held-out sample in
// one call, then the first few again one at a time, all classified as the training script did.
// Returns the check's output for the protocol's own assertions.
std::string runCheck(const std::string& protocol) {
  auto m = startNode(twoAppConfig());
  REQUIRE(eventually([&] { return allServing(*m, "digits", 1) && allServing(*m, "echo", 1); },
                     std::chrono::seconds(30)));
  const int port = protocol == "http" ? m->httpPort() : m->grpcPort();
  const std::pair<int, std::string> result =
      runShell(python(std::string(SERVE_SOURCE_DIR) + "/tests/integration/triton_client_check.py" +
                      " --protocol " + protocol + " --url 127.0.0.1:" + std::to_string(port) +
                      (protocol == "grpc" ? " --application digits" : "") +
                      " --model digits --expected " + kExpected));
  const int code = result.first;
  const std::string& output = result.second;  // not a structured binding: INFO captures it
  INFO(output);
  CHECK(code == 0);
  const std::string total = std::to_string(readJson(kExpected)["heldout"].size() + kSingleSamples);
  CHECK(lastLine(output) == "triton-check: " + total + " of " + total + " correct");
  return output;
}

TEST_CASE("node: Triton's unmodified Python client tritonclient classifies the digits over gRPC") {
  if (!clientInstalled("grpc")) {
    return;
  }
  const std::string output = runCheck("grpc");
  INFO(output);
  CHECK(output.find("\nno-application: NOT_FOUND Request metadata 'application' is missing") !=
        std::string::npos);
  // Server-level calls go to the application's replica.
  CHECK(output.find("\nserver-metadata: name=serve-replica extensions=[]\n") != std::string::npos);
}

TEST_CASE(
    "node: Triton's unmodified Python HTTP client classifies the digits with binary tensor data") {
  if (!clientInstalled("http")) {
    return;
  }
  const std::string output = runCheck("http");
  INFO(output);
  // HAProxy answers for the node.
  CHECK(output.find("\nserver-metadata: name=haproxy-serve extensions=['binary_tensor_data']\n") !=
        std::string::npos);
  // The answer to the batch carried the probabilities as bytes, not JSON numbers.
  const size_t heldout = readJson(kExpected)["heldout"].size();
  CHECK(output.find(
            "batch: output parameters {'binary_data_size': " + std::to_string(heldout * 10 * 4) +
            "}, data in JSON: False\n") != std::string::npos);
  // HAProxy's 404 for a model no application serves is KServe's JSON error, which the client
  // reads as a message.
  CHECK(output.find("\nunknown-model: 404 Path '/v2/models/no_such_model/infer' not found.") !=
        std::string::npos);
}

}  // namespace
}  // namespace serve::testing
