// A gRPC client that nobody in this project wrote, unmodified: Triton's Python client
// (tritonclient[grpc] from PyPI, which scripts/setup.sh puts under .tools/tritonclient) runs
// tests/integration/triton_client_check.py against a real node through HAProxy's gRPC front end.
// Without the package the test says so loudly and skips.
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

TEST_CASE("node: Triton's unmodified Python client tritonclient classifies the digits over gRPC") {
  const auto [import_code, import_output] = runShell(python("-c 'import tritonclient.grpc'"));
  if (import_code != 0) {
    MESSAGE("!!!!! tritonclient[grpc] is not importable from ", kTritonClientDir,
            " (install it with `bash scripts/setup.sh`): this test is SKIPPED !!!!!\n",
            import_output);
    return;
  }

  auto m = startNode(twoAppConfig());
  REQUIRE(eventually([&] { return allServing(*m, "digits", 1) && allServing(*m, "echo", 1); },
                     std::chrono::seconds(30)));

  const std::string expected = std::string(SERVE_SOURCE_DIR) + "/models/digits.json";
  const auto [code, output] =
      runShell(python(std::string(SERVE_SOURCE_DIR) + "/tests/integration/triton_client_check.py" +
                      " --url 127.0.0.1:" + std::to_string(m->grpcPort()) +
                      " --application digits --model digits --expected " + expected));
  INFO(output);
  CHECK(code == 0);
  // Every held-out sample in one ModelInfer, then the first few again one at a time.
  const std::string total = std::to_string(readJson(expected)["heldout"].size() + kSingleSamples);
  CHECK(lastLine(output) == "triton-check: " + total + " of " + total + " correct");
  CHECK(output.find("\nno-application: NOT_FOUND Request metadata 'application' is missing") !=
        std::string::npos);
}

}  // namespace
}  // namespace serve::testing
