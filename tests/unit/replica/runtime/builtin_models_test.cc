#include "replica/runtime/builtin_models.h"

#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace serve {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

Tensor floats(const std::string& name, std::vector<int64_t> shape, std::vector<float> v) {
  Tensor t;
  t.name = name;
  t.datatype = DataType::kFp32;
  t.shape = std::move(shape);
  t.data.resize(v.size() * sizeof(float));
  std::memcpy(t.data.data(), v.data(), t.data.size());
  return t;
}

Tensor int64s(const std::string& name, std::vector<int64_t> v) {
  Tensor t;
  t.name = name;
  t.datatype = DataType::kInt64;
  t.shape = {static_cast<int64_t>(v.size())};
  t.data.resize(v.size() * sizeof(int64_t));
  std::memcpy(t.data.data(), v.data(), t.data.size());
  return t;
}

InferRequest request(const std::string& id, std::vector<Tensor> inputs,
                     std::vector<std::string> requested = {}) {
  InferRequest r;
  r.id = id;
  r.model = "echo";
  r.inputs = std::move(inputs);
  r.requested_outputs = std::move(requested);
  return r;
}

std::vector<std::string> names(const InferResponse& r) {
  std::vector<std::string> out;
  for (const Tensor& t : r.outputs) {
    out.push_back(t.name);
  }
  return out;
}

bool sameTensor(const Tensor& a, const Tensor& b) {
  return a.name == b.name && a.datatype == b.datatype && a.shape == b.shape && a.data == b.data;
}

std::vector<StatusOr<InferResponse>> runOne(Model& m, const std::vector<InferRequest>& reqs) {
  std::vector<const InferRequest*> ptrs;
  for (const InferRequest& r : reqs) {
    ptrs.push_back(&r);
  }
  return m.run(ptrs);
}

TEST_CASE("built-in models describe themselves") {
  struct Case {
    std::string platform;
    std::unique_ptr<Model> model;
  };
  std::vector<Case> cases;
  cases.push_back({"serve-builtin-noop", makeNoopModel("echo")});
  cases.push_back({"serve-builtin-sleep", makeSleepModel("echo", std::chrono::microseconds(1))});
  for (const Case& c : cases) {
    CAPTURE(c.platform);
    const ModelMetadata& m = c.model->metadata();
    CHECK(m.name == "echo");
    CHECK(m.platform == c.platform);
    CHECK(m.backend == "cpu");
    CHECK(m.versions == std::vector<std::string>{"1"});
    CHECK(m.inputs.empty());
    CHECK(m.outputs.empty());
  }
}

TEST_CASE("noop echoes every request's inputs in order under its own id") {
  auto model = makeNoopModel("echo");
  const std::vector<InferRequest> batch = {
      request("r1", {floats("a", {2}, {1.0f, 2.0f}), int64s("b", {7, -7, 0})}),
      request("r2", {int64s("z", {1}), floats("a", {1, 1}, {0.5f})}),
      request("", {floats("only", {}, {3.0f})}),
  };
  auto results = runOne(*model, batch);
  REQUIRE(results.size() == batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    CAPTURE(i);
    REQUIRE(results[i].ok());
    CHECK(results[i]->id == batch[i].id);
    CHECK(results[i]->model == "echo");
    REQUIRE(results[i]->outputs.size() == batch[i].inputs.size());
    for (size_t k = 0; k < batch[i].inputs.size(); ++k) {
      CAPTURE(k);
      CHECK(sameTensor(results[i]->outputs[k], batch[i].inputs[k]));
    }
  }
}

TEST_CASE("noop returns only the requested outputs, in input order") {
  auto model = makeNoopModel("echo");
  struct Case {
    std::vector<std::string> requested;
    std::vector<std::string> outputs;
  };
  const std::vector<Case> cases = {
      {{}, {"a", "b", "c"}},
      {{"b"}, {"b"}},
      {{"c", "a"}, {"a", "c"}},
      {{"a", "b", "c"}, {"a", "b", "c"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.requested.size());
    CAPTURE(c.outputs.size());
    const std::vector<InferRequest> batch = {
        request("r", {floats("a", {1}, {1.0f}), floats("b", {1}, {2.0f}), floats("c", {1}, {3.0f})},
                c.requested)};
    REQUIRE(model->validate(batch[0]).ok());
    auto results = runOne(*model, batch);
    REQUIRE(results.size() == 1);
    REQUIRE(results[0].ok());
    CHECK(names(*results[0]) == c.outputs);
  }
}

TEST_CASE("echo models validate inputs and requested outputs") {
  for (auto& model :
       {makeNoopModel("echo"), makeSleepModel("echo", std::chrono::microseconds(1))}) {
    CAPTURE(model->metadata().platform);
    struct Case {
      InferRequest req;
      std::string message;  // empty: valid
    };
    const std::vector<Case> cases = {
        {request("r", {floats("a", {1}, {1.0f})}), ""},
        {request("r", {floats("a", {1}, {1.0f})}, {"a"}), ""},
        {request("r", {}), "expected at least one input tensor"},
        {request("r", {}, {"a"}), "expected at least one input tensor"},
        {request("r", {floats("a", {1}, {1.0f})}, {"a", "c"}),
         "unknown output 'c': model 'echo' echoes its inputs"},
    };
    for (const Case& c : cases) {
      CAPTURE(c.message);
      Status st = model->validate(c.req);
      if (c.message.empty()) {
        CHECK(st.ok());
      } else {
        CHECK(st.code() == absl::StatusCode::kInvalidArgument);
        CHECK(std::string(st.message()) == c.message);
      }
    }
  }
}

TEST_CASE("sleep sleeps once per forward pass, then echoes") {
  // 50 requests x 10 ms: sleeping per request would take 500 ms, leaving room for scheduling
  // delays on a loaded machine.
  constexpr milliseconds kSleep(10);
  auto model = makeSleepModel("echo", kSleep);
  std::vector<InferRequest> batch;
  for (int i = 0; i < 50; ++i) {
    batch.push_back(request("r" + std::to_string(i), {floats("a", {1}, {static_cast<float>(i)})}));
  }
  auto start = steady_clock::now();
  auto results = runOne(*model, batch);
  auto took = steady_clock::now() - start;
  CAPTURE(std::chrono::duration_cast<milliseconds>(took).count());
  CHECK(took >= kSleep);
  CHECK(took < kSleep * static_cast<int>(batch.size()));  // once per pass, not per request
  REQUIRE(results.size() == batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    CAPTURE(i);
    REQUIRE(results[i].ok());
    CHECK(results[i]->id == batch[i].id);
    REQUIRE(results[i]->outputs.size() == 1);
    CHECK(sameTensor(results[i]->outputs[0], batch[i].inputs[0]));
  }
}

}  // namespace
}  // namespace serve
