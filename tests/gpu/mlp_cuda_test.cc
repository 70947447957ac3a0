// The CUDA back end against the double-precision reference, and against the CPU back end's
// request validation. Every test needs a device; without one it says so loudly and passes
// (doctest cannot skip at run time), and the `gpu` label keeps it out of `ctest -LE gpu`.
#include "replica/runtime/cuda/mlp_cuda.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <tuple>

#include "replica/runtime/mlp_cpu.h"
#include "tests/support/reference_mlp.h"

namespace serve {
namespace {

using testing::randomInputs;
using testing::randomMlp;
using testing::rowError;

// CTest runs each test case as its own process (doctest_discover_tests) and reports exit code
// 77 as "Skipped" (SKIP_RETURN_CODE in tests/gpu/CMakeLists.txt), so a machine without a GPU
// shows these tests as skipped, not as passed.
constexpr int kSkipExitCode = 77;

bool deviceVisible() {
  if (visibleCudaDevices() > 0) {
    return true;
  }
  std::fprintf(stderr, "SKIPPED: no CUDA device visible\n");
  std::exit(kSkipExitCode);
}

// The worst per-row relative error of `y` against the reference forward pass of `x`.
double worstRowError(const MlpWeights& w, const std::vector<float>& x, const std::vector<float>& y,
                     int64_t rows) {
  std::vector<double> ref = testing::referenceForward(w, x, rows);
  const int64_t cols = w.outputs();
  double worst = 0;
  for (int64_t r = 0; r < rows; ++r) {
    worst = std::max(worst, rowError(y.data() + r * cols, ref.data() + r * cols, cols));
  }
  return worst;
}

std::unique_ptr<CudaMlpModel> createOrFail(const MlpWeights& w, const std::string& name,
                                           int max_batch_rows) {
  auto model = CudaMlpModel::create(w, name, 0, max_batch_rows);
  if (!model.ok()) {
    FAIL("CudaMlpModel::create: " << messageOf(model.status()));
  }
  return std::move(*model);
}

InferRequest requestFor(const std::string& name, const std::vector<float>& x, int64_t rows,
                        int64_t cols) {
  Tensor t{name, DataType::kFp32, {rows, cols}, {}};
  t.data.resize(x.size() * sizeof(float));
  std::memcpy(t.data.data(), x.data(), t.data.size());
  InferRequest r;
  r.inputs.push_back(std::move(t));
  return r;
}

}  // namespace

TEST_CASE("visibleCudaDevices answers without a device and create() refuses a missing one") {
  const int devices = visibleCudaDevices();
  CHECK(devices >= 0);
  MESSAGE("CUDA devices visible: " << devices);
  for (int d = 0; d < devices; ++d) {
    MESSAGE("device " << d << ": " << cudaDeviceName(d));
    CHECK(!cudaDeviceName(d).empty());
  }
  CHECK(cudaDeviceName(devices).empty());
  auto model = CudaMlpModel::create(randomMlp({4, 2}, true, 1), "m", devices, 8);
  REQUIRE(!model.ok());
  CHECK(model.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(messageOf(model.status()).find("CUDA device " + std::to_string(devices)) !=
        std::string::npos);
}

TEST_CASE("CudaMlpModel matches the double-precision reference within 1e-3 (needs a GPU)") {
  if (!deviceVisible()) {
    return;
  }
  struct Shape {
    std::vector<int64_t> widths;
    int max_batch_rows;
  };
  for (const Shape& shape : {Shape{{64, 128, 96, 10}, 256}, Shape{{1024, 4096, 1000}, 100}}) {
    for (bool softmax : {false, true}) {
      MlpWeights w = randomMlp(shape.widths, softmax, 7);
      std::unique_ptr<CudaMlpModel> model = createOrFail(w, "m", shape.max_batch_rows);
      CHECK(model->inputs() == shape.widths.front());
      CHECK(model->outputs() == shape.widths.back());
      for (int64_t rows : {int64_t{1}, int64_t{7}, int64_t{64}, int64_t{shape.max_batch_rows}}) {
        CAPTURE(shape.widths.front());
        CAPTURE(softmax);
        CAPTURE(rows);
        std::vector<float> x = randomInputs(rows, w.inputs(), static_cast<uint64_t>(rows));
        std::vector<float> y;
        Status st = model->forward(x.data(), rows, y);
        REQUIRE_MESSAGE(st.ok(), messageOf(st));
        REQUIRE(y.size() == static_cast<size_t>(rows * w.outputs()));
        CHECK(worstRowError(w, x, y, rows) < 1e-3);
      }
    }
  }
}

TEST_CASE("CudaMlpModel grows its buffers on demand and reuses them (needs a GPU)") {
  if (!deviceVisible()) {
    return;
  }
  MlpWeights w = randomMlp({33, 65, 17}, true, 5);  // widths that are not multiples of 4
  std::unique_ptr<CudaMlpModel> model = createOrFail(w, "m", 16);
  CHECK(model->capacityRows() == 16);
  for (auto row_case :
       {std::pair<int64_t, int64_t>{5, 16}, {16, 16}, {300, 300}, {3, 300}, {300, 300}}) {
    auto [rows, capacity_at_least] = row_case;
    CAPTURE(row_case.first);
    std::vector<float> x = randomInputs(rows, 33, static_cast<uint64_t>(rows) + 100);
    std::vector<float> y;
    Status st = model->forward(x.data(), rows, y);
    REQUIRE_MESSAGE(st.ok(), messageOf(st));
    CHECK(model->capacityRows() >= capacity_at_least);
    CHECK(worstRowError(w, x, y, rows) < 1e-3);
  }
  const int64_t grown = model->capacityRows();
  std::vector<float> x = randomInputs(7, 33, 1);
  std::vector<float> y;
  REQUIRE(model->forward(x.data(), 7, y).ok());
  CHECK(model->capacityRows() == grown);  // a smaller batch never reallocates
  REQUIRE(model->forward(x.data(), 0, y).ok());
  CHECK(y.empty());
}

TEST_CASE(
    "CudaMlpModel runs a batch of requests as one pass and splits the rows back "
    "(needs a GPU)") {
  if (!deviceVisible()) {
    return;
  }
  MlpWeights w = randomMlp({8, 16, 4}, true, 3);
  std::unique_ptr<CudaMlpModel> model = createOrFail(w, "m", 4);
  std::vector<float> a = randomInputs(2, 8, 11);
  std::vector<float> b = randomInputs(3, 8, 12);
  InferRequest ra = requestFor("input", a, 2, 8);
  InferRequest rb = requestFor("input", b, 3, 8);
  ra.id = "a";
  rb.id = "b";
  REQUIRE(model->validate(ra).ok());
  REQUIRE(model->validate(rb).ok());
  const InferRequest* batch[] = {&ra, &rb};
  auto results = model->run(batch);
  REQUIRE(results.size() == 2);
  for (auto result_case : {std::tuple{&results[0], &a, int64_t{2}, "a"},
                           std::tuple{&results[1], &b, int64_t{3}, "b"}}) {
    auto [res, x, rows, id] = result_case;
    REQUIRE_MESSAGE(std::get<0>(result_case)->ok(), messageOf(std::get<0>(result_case)->status()));
    CHECK((*res)->id == id);
    CHECK((*res)->model == "m");
    const Tensor& out = (*res)->outputs.at(0);
    CHECK(out.name == "output");
    CHECK(out.datatype == DataType::kFp32);
    CHECK(out.shape == std::vector<int64_t>{rows, 4});
    auto y = out.as<float>();
    std::vector<float> got(y.begin(), y.end());
    CHECK(worstRowError(w, *x, got, rows) < 1e-3);
  }
}

TEST_CASE("CudaMlpModel metadata and validation match the CPU back end (needs a GPU)") {
  if (!deviceVisible()) {
    return;
  }
  MlpWeights w = randomMlp({64, 10}, true, 1);
  CpuMlpModel cpu(w, "digits", 1);
  std::unique_ptr<CudaMlpModel> cuda = createOrFail(w, "digits", 8);

  const ModelMetadata& m = cuda->metadata();
  CHECK(m.backend == "cuda");
  CHECK(m.name == cpu.metadata().name);
  CHECK(m.platform == cpu.metadata().platform);
  CHECK(m.versions == cpu.metadata().versions);
  REQUIRE(m.inputs.size() == 1);
  REQUIRE(m.outputs.size() == 1);
  CHECK(m.inputs[0].name == "input");
  CHECK(m.inputs[0].shape == std::vector<int64_t>{-1, 64});
  CHECK(m.outputs[0].name == "output");
  CHECK(m.outputs[0].shape == std::vector<int64_t>{-1, 10});
  CHECK(cuda->maxConcurrentPasses() == 1);

  std::vector<float> x(64);
  InferRequest good = requestFor("input", x, 1, 64);
  InferRequest wrong_width = requestFor("input", std::vector<float>(63), 1, 63);
  InferRequest wrong_name = requestFor("pixels", x, 1, 64);
  InferRequest wrong_type = requestFor("input", x, 1, 64);
  wrong_type.inputs[0].datatype = DataType::kInt32;
  InferRequest wrong_rank = requestFor("input", x, 64, 1);
  wrong_rank.inputs[0].shape = {64};
  InferRequest no_rows = requestFor("input", {}, 0, 64);
  InferRequest two = requestFor("input", x, 1, 64);
  two.inputs.push_back(two.inputs[0]);
  InferRequest none;
  InferRequest bad_output = requestFor("input", x, 1, 64);
  bad_output.requested_outputs = {"logits"};
  InferRequest good_output = requestFor("input", x, 1, 64);
  good_output.requested_outputs = {"output"};

  CHECK(cuda->validate(good).ok());
  CHECK(cuda->validate(good_output).ok());
  for (const InferRequest* bad :
       {&wrong_width, &wrong_name, &wrong_type, &wrong_rank, &no_rows, &two, &none, &bad_output}) {
    Status want = cpu.validate(*bad);
    Status got = cuda->validate(*bad);
    CAPTURE(messageOf(want));
    REQUIRE(!want.ok());
    CHECK(got.code() == absl::StatusCode::kInvalidArgument);
    CHECK(messageOf(got) == messageOf(want));
  }
}

}  // namespace serve
