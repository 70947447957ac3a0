// The example digits model through a real serve-replica whose deployment asks for a GPU: the
// replica must pick the CUDA back end, say so in its metadata, metrics and log, and answer the
// held-out samples like the training script. Without a visible device every test prints
// "SKIPPED: no CUDA device visible" and exits 77, which CTest reports as skipped.
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "replica/runtime/cuda/mlp_cuda.h"
#include "tests/integration/replica_fixture.h"
#include "tests/support/digits.h"
#include "tests/support/json_file.h"

using namespace serve::testing;

namespace {

constexpr int kSkipExitCode = 77;

void requireDevice() {
  if (serve::visibleCudaDevices() > 0) {
    return;
  }
  std::fprintf(stderr, "SKIPPED: no CUDA device visible\n");
  std::exit(kSkipExitCode);
}

// The GPU's probabilities may differ from the training script's float64 ones by the back end's
// FP32 rounding: the same 1e-3 bound as the CUDA back end's relative-error tests.
constexpr double kGpuTolerance = 1e-3;

}  // namespace

TEST_CASE("gpu replica: digits on CUDA match the training script's held-out predictions") {
  requireDevice();
  nlohmann::json expected = readJson(std::string(SERVE_SOURCE_DIR) + "/models/digits.json");
  const auto& heldout = expected["heldout"];
  REQUIRE(heldout.size() >= 10);
  ReplicaOptions o;
  o.config_yaml = digitsConfig(digitsPath(), 8, /*num_gpus=*/1);
  ReplicaProcess r(o);
  REQUIRE(r.start(std::chrono::seconds(30)));  // CUDA context creation and the warm-up pass

  auto meta = nlohmann::json::parse(httpGet(r.url("/v2/models/digits")).body);
  CHECK(meta["parameters"]["backend"] == "cuda");
  CHECK(meta["inputs"][0]["shape"] == nlohmann::json::array({-1, 64}));
  CHECK(meta["outputs"][0]["shape"] == nlohmann::json::array({-1, 10}));
  CHECK(metric(r, series("serve_model_backend_info", "backend=\"cuda\"")) == 1);
  const std::string device = serve::cudaDeviceName(0);
  MESSAGE("CUDA device 0: " << device);
  CHECK(r.output().find("forward passes run on CUDA device 0 (" + device + ")") !=
        std::string::npos);

  // Concurrent, so that batches of several samples form on the device.
  double worst = checkHeldOut(r.url("/digits"), heldout);
  MESSAGE("largest probability difference from the training script: " << worst);
  CHECK(worst < kGpuTolerance);
  CHECK(metric(r, series("serve_model_requests_total")) == static_cast<double>(heldout.size()));
}

TEST_CASE("gpu replica: a bad request in a batch on CUDA fails alone") {
  requireDevice();
  ReplicaOptions o;
  o.config_yaml = digitsConfig(digitsPath(), 16, /*num_gpus=*/1);
  ReplicaProcess r(o);
  REQUIRE(r.start(std::chrono::seconds(30)));
  checkOneBadFailsAlone(
      r.url("/v2/models/digits/infer"),
      R"({"inputs":[{"name":"input","shape":[1,2],"datatype":"FP64","data":[0,0]}]})",
      R"({"error":"input 'input': expected FP32 with shape [-1, 64], got FP64 [1, 2]"})");
  CHECK(metric(r, series("serve_model_requests_total")) == 7);
}
