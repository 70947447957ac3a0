// examples/torch.yaml (the PyTorch digits class, examples/python/torch_digits.py) through a
// real serve-replica: the 20 held-out samples of models/digits.json over HTTP and KServe. Label
// `gpu`; the class runs on a GPU where torch sees one and on the CPU otherwise. PyTorch is not
// installed by scripts/setup.sh: where the worker's Python cannot import it, the test is skipped
// and says so.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/digits.h"
#include "tests/support/json_file.h"
#include "tests/support/replica_process.h"

namespace serve::testing {
namespace {

const std::string kSourceDir = SERVE_SOURCE_DIR;

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool torchAvailable() {
  std::string output;
  FILE* pipe = ::popen((std::string(SERVE_TEST_PYTHON) + " -c 'import torch' 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) {
    output += buffer;
  }
  if (::pclose(pipe) != 0) {
    MESSAGE("!!!!! ", SERVE_TEST_PYTHON,
            " cannot import torch (docs/python.md says how to install "
            "PyTorch): this test is SKIPPED\n",
            output);
    return false;
  }
  return true;
}

TEST_CASE("torch example: the 20 held-out digits through the PyTorch class") {
  if (!torchAvailable()) {
    return;
  }
  ReplicaOptions o;
  o.config_yaml = readFile(kSourceDir + "/examples/torch.yaml");
  // working_dir: python resolves against the config's folder, which the fixture does not keep.
  const std::string examples = kSourceDir + "/examples/python";
  o.config_yaml.replace(o.config_yaml.find("working_dir: python"), 19, "working_dir: " + examples);
  o.app = "torch_digits";
  o.env = {{"SERVE_PYTHON", SERVE_TEST_PYTHON}};
  ReplicaProcess r(o);
  const bool started = r.start(std::chrono::seconds(120));  // importing torch takes a while
  INFO(r.output());
  REQUIRE(started);

  const nlohmann::json heldout = readJson(kSourceDir + "/models/digits.json")["heldout"];
  REQUIRE(heldout.size() == 20);
  // KServe tensors: the predicted class of every sample, probabilities within 1e-4.
  CHECK(checkHeldOut(r.url("/v2/models/digits_torch/infer"), heldout) < 1e-4);
  // Text in, text out through @serve.batch.
  for (size_t i = 0; i < heldout.size(); ++i) {
    CAPTURE(i);
    const HttpResult answer =
        httpPost(r.url("/torch"), nlohmann::json{{"pixels", heldout[i]["inputs"]}}.dump());
    REQUIRE(answer.status == 200);
    const nlohmann::json reply = nlohmann::json::parse(answer.body);
    CHECK(reply["digit"] == heldout[i]["predicted"]);
    const std::string device = reply["device"].get<std::string>();
    CHECK((device == "cpu" || device == "cuda:0"));
  }
}

}  // namespace
}  // namespace serve::testing
