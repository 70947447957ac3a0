// The CPU back end against the double-precision reference, and its request validation.
#include "replica/runtime/mlp_cpu.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "tests/support/reference_mlp.h"

namespace serve {
namespace {

using testing::randomInputs;
using testing::randomMlp;
using testing::rowError;

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

TEST_CASE("CpuMlpModel matches the double-precision reference within 1e-5") {
  for (bool softmax : {false, true}) {
    MlpWeights w = randomMlp({64, 128, 96, 10}, softmax, 7);
    testing::referenceForward(w, {}, 0);  // empty batch is fine
    MlpWeights copy = w;
    CpuMlpModel model(std::move(copy), "m", 1);
    for (int64_t rows : {1, 7, 64, 512}) {
      CAPTURE(softmax);
      CAPTURE(rows);
      std::vector<float> x = randomInputs(rows, 64, static_cast<uint64_t>(rows));
      std::vector<float> y;
      model.forward(x.data(), rows, y);
      REQUIRE(y.size() == static_cast<size_t>(rows * 10));
      std::vector<double> ref = testing::referenceForward(w, x, rows);
      double worst = 0;
      for (int64_t r = 0; r < rows; ++r) {
        worst = std::max(worst, rowError(y.data() + r * 10, ref.data() + r * 10, 10));
      }
      CHECK(worst < 1e-5);
    }
  }
}

TEST_CASE("CpuMlpModel runs a batch of requests as one pass and splits the rows back") {
  MlpWeights w = randomMlp({8, 16, 4}, true, 3);
  MlpWeights copy = w;
  CpuMlpModel model(std::move(copy), "m", 1);
  std::vector<float> a = randomInputs(2, 8, 11);
  std::vector<float> b = randomInputs(3, 8, 12);
  InferRequest ra = requestFor("input", a, 2, 8);
  InferRequest rb = requestFor("input", b, 3, 8);
  ra.id = "a";
  rb.id = "b";
  REQUIRE(model.validate(ra).ok());
  REQUIRE(model.validate(rb).ok());
  const InferRequest* batch[] = {&ra, &rb};
  auto results = model.run(batch);
  REQUIRE(results.size() == 2);
  for (auto [res, x, rows, id] : {std::tuple{&results[0], &a, int64_t{2}, "a"},
                                  std::tuple{&results[1], &b, int64_t{3}, "b"}}) {
    REQUIRE(res->ok());
    CHECK((*res)->id == id);
    const Tensor& out = (*res)->outputs.at(0);
    CHECK(out.name == "output");
    CHECK(out.shape == std::vector<int64_t>{rows, 4});
    std::vector<double> ref = testing::referenceForward(w, *x, rows);
    auto y = out.as<float>();
    for (int64_t r = 0; r < rows; ++r) {
      CHECK(rowError(y.data() + r * 4, ref.data() + r * 4, 4) < 1e-5);
    }
  }
}

TEST_CASE("CpuMlpModel metadata and validation name the expected input") {
  CpuMlpModel model(randomMlp({64, 10}, true, 1), "digits", 1);
  const ModelMetadata& m = model.metadata();
  CHECK(m.backend == "cpu");
  REQUIRE(m.inputs.size() == 1);
  CHECK(m.inputs[0].shape == std::vector<int64_t>{-1, 64});
  CHECK(m.outputs[0].shape == std::vector<int64_t>{-1, 10});

  struct Case {
    InferRequest request;
    std::string message;
  };
  std::vector<float> x(64);
  InferRequest wrong_width = requestFor("input", std::vector<float>(63), 1, 63);
  InferRequest wrong_name = requestFor("pixels", x, 1, 64);
  InferRequest wrong_type = requestFor("input", x, 1, 64);
  wrong_type.inputs[0].datatype = DataType::kInt32;
  InferRequest two = requestFor("input", x, 1, 64);
  two.inputs.push_back(two.inputs[0]);
  InferRequest bad_output = requestFor("input", x, 1, 64);
  bad_output.requested_outputs = {"logits"};
  std::vector<Case> cases = {
      {wrong_width, "input 'input': expected FP32 with shape [-1, 64], got FP32 [1, 63]"},
      {wrong_name,
       "unknown input 'pixels': model 'digits' takes 'input' (FP32 with shape [-1, 64])"},
      {wrong_type, "input 'input': expected FP32 with shape [-1, 64], got INT32 [1, 64]"},
      {two, "model 'digits' takes one input, 'input' (FP32 with shape [-1, 64]); got 2"},
      {bad_output, "unknown output 'logits': model 'digits' has 'output'"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.message);
    Status st = model.validate(c.request);
    CHECK(st.code() == absl::StatusCode::kInvalidArgument);
    CHECK(messageOf(st) == c.message);
  }
}

}  // namespace serve
