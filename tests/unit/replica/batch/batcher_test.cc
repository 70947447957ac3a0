#include "replica/batch/batcher.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "replica/runtime/model.h"

namespace serve {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using Batches = std::vector<std::vector<std::string>>;

constexpr auto kPatience = std::chrono::seconds(5);  // only ever reached when a test fails

// Echoes each request's inputs under its id and records every batch's request ids. While the
// gate is shut, run() blocks after recording its batch, so a test can hold the batcher inside
// a forward pass and queue work behind it.
class GateModel : public Model {
 public:
  GateModel() {
    metadata_.name = "gate";
    metadata_.platform = "test";
    metadata_.backend = "cpu";
  }

  const ModelMetadata& metadata() const override { return metadata_; }
  Status validate(const InferRequest&) const override { return absl::OkStatus(); }

  std::vector<StatusOr<InferResponse>> run(std::span<const InferRequest* const> batch) override {
    std::unique_lock lock(mu_);
    std::vector<std::string> ids;
    for (const InferRequest* r : batch) {
      ids.push_back(r->id);
    }
    batches_.push_back(std::move(ids));
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });

    std::vector<StatusOr<InferResponse>> results;
    for (const InferRequest* r : batch) {
      if (r->id.starts_with("fail")) {
        results.emplace_back(absl::InvalidArgumentError("model refused " + r->id));
        continue;
      }
      InferResponse resp;
      resp.id = r->id;
      resp.model = metadata_.name;
      resp.outputs = r->inputs;
      results.emplace_back(std::move(resp));
    }
    results.resize(results.size() - std::min(results.size(), short_by_));
    return results;
  }

  void shut() {
    std::lock_guard lock(mu_);
    open_ = false;
  }
  void open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  // The next forward passes return this many results too few.
  void returnTooFew(size_t n) {
    std::lock_guard lock(mu_);
    short_by_ = n;
  }
  // True once run() has been entered `n` times.
  bool waitForBatches(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kPatience, [&] { return batches_.size() >= n; });
  }
  Batches batches() const {
    std::lock_guard lock(mu_);
    return batches_;
  }

 private:
  ModelMetadata metadata_;
  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  bool open_ = true;
  size_t short_by_ = 0;
  Batches batches_;
};

// Opens the gate on scope exit, declared after the Batcher so it runs first: a failing test
// must not leave ~Batcher() joining a thread stuck in run().
struct OpenOnExit {
  GateModel& model;
  ~OpenOnExit() { model.open(); }
};

std::shared_ptr<Call> makeCall(const std::string& id, float value,
                               Call::TimePoint deadline = Call::TimePoint::max()) {
  auto call = std::make_shared<Call>();
  call->request.id = id;
  call->request.model = "gate";
  Tensor t;
  t.name = "x";
  t.datatype = DataType::kFp32;
  t.shape = {1};
  t.data.resize(sizeof(float));
  std::memcpy(t.data.data(), &value, sizeof(float));
  call->request.inputs.push_back(std::move(t));
  call->deadline = deadline;
  return call;
}

bool finished(Call& call) { return call.waitUntil(steady_clock::now() + kPatience); }

// Counts what the batcher reports, from whichever thread reports it.
struct Counters {
  std::atomic<int> releases{0};
  std::atomic<int> skipped{0};
  std::mutex mu;  // guards skipped_ids and batch_sizes
  std::vector<std::string> skipped_ids;
  std::vector<size_t> batch_sizes;

  std::function<void()> releaseSlot() {
    return [this] { ++releases; };
  }
  BatchObserver observer() {
    BatchObserver o;
    o.on_skipped = [this](const Call& c) {
      ++skipped;
      std::lock_guard lock(mu);
      skipped_ids.push_back(c.request.id);
    };
    o.on_batch = [this](size_t size, std::chrono::nanoseconds, std::chrono::nanoseconds) {
      std::lock_guard lock(mu);
      batch_sizes.push_back(size);
    };
    return o;
  }
};

BatchConfig config(size_t max_batch_size, milliseconds timeout) {
  BatchConfig c;
  c.max_batch_size = max_batch_size;
  c.batch_wait_timeout = timeout;
  return c;
}

TEST_CASE("Batcher: calls queued behind a running batch form the next batches") {
  struct Case {
    size_t queued_behind;
    size_t max_batch_size;
    std::vector<size_t> later_batches;  // sizes of the batches after the first, in order
  };
  const std::vector<Case> cases = {
      {1, 4, {1}},
      {3, 4, {3}},
      {4, 4, {4}},
      {6, 4, {4, 2}},
      {3, 1, {1, 1, 1}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.queued_behind);
    CAPTURE(c.max_batch_size);
    GateModel model;
    Counters counters;
    Batcher batcher(model, config(c.max_batch_size, milliseconds(10'000)), counters.releaseSlot(),
                    counters.observer());
    OpenOnExit guard{model};

    model.shut();
    auto first = makeCall("first", -1.0f);
    batcher.submit(first);
    REQUIRE(model.waitForBatches(1));

    std::vector<std::shared_ptr<Call>> calls;
    for (size_t i = 0; i < c.queued_behind; ++i) {
      calls.push_back(makeCall("c" + std::to_string(i), static_cast<float>(i) + 0.5f));
      batcher.submit(calls.back());
    }
    CHECK(batcher.queued() == c.queued_behind);
    CHECK(model.batches().size() == 1);
    model.open();

    REQUIRE(finished(*first));
    for (size_t i = 0; i < calls.size(); ++i) {
      CAPTURE(i);
      REQUIRE(finished(*calls[i]));
      StatusOr<InferResponse>& result = calls[i]->result();
      REQUIRE(result.ok());
      // Each caller gets its own result: its id and its own input echoed back.
      CHECK(result->id == "c" + std::to_string(i));
      REQUIRE(result->outputs.size() == 1);
      REQUIRE(result->outputs[0].as<float>().size() == 1);
      CHECK(result->outputs[0].as<float>()[0] == static_cast<float>(i) + 0.5f);
    }

    Batches expected = {{"first"}};
    size_t next = 0;
    for (size_t size : c.later_batches) {
      std::vector<std::string> ids;
      for (size_t k = 0; k < size; ++k, ++next) {
        ids.push_back("c" + std::to_string(next));
      }
      expected.push_back(ids);
    }
    CHECK(model.batches() == expected);
    batcher.stop();
    CHECK(counters.releases == static_cast<int>(c.queued_behind + 1));
    CHECK(counters.skipped == 0);
    std::vector<size_t> sizes = {1};
    sizes.insert(sizes.end(), c.later_batches.begin(), c.later_batches.end());
    CHECK(counters.batch_sizes == sizes);
  }
}

TEST_CASE("Batcher: a call whose deadline passed never reaches the model") {
  GateModel model;
  Counters counters;
  Batcher batcher(model, config(8, milliseconds(10'000)), counters.releaseSlot(),
                  counters.observer());
  OpenOnExit guard{model};

  SUBCASE("already past when submitted") {
    auto late = makeCall("late", 1.0f, steady_clock::now() - milliseconds(1));
    batcher.submit(late);
    REQUIRE(finished(*late));
    CHECK(late->result().status().code() == absl::StatusCode::kDeadlineExceeded);
    CHECK(std::string(late->result().status().message()) == "dropped before reaching the model");
  }
  SUBCASE("expires while queued behind a running batch") {
    model.shut();
    auto first = makeCall("first", 0.0f);
    batcher.submit(first);
    REQUIRE(model.waitForBatches(1));
    auto late = makeCall("late", 1.0f, steady_clock::now() + milliseconds(5));
    auto on_time = makeCall("on_time", 2.0f);
    batcher.submit(late);
    batcher.submit(on_time);
    // Wait out the deadline for real: the batcher only looks again once the pass ends.
    while (steady_clock::now() <= late->deadline) {
      std::this_thread::sleep_for(milliseconds(1));
    }
    model.open();
    REQUIRE(finished(*late));
    REQUIRE(finished(*on_time));
    CHECK(late->result().status().code() == absl::StatusCode::kDeadlineExceeded);
    CHECK(on_time->result().ok());
    CHECK(model.batches() == Batches{{"first"}, {"on_time"}});
  }
  SUBCASE("expires while the batch waits for more: the batcher wakes for the deadline") {
    batcher.addIncoming(1);  // so the policy would hold the call for the 10 s batch wait
    auto start = steady_clock::now();
    auto late = makeCall("late", 1.0f, start + milliseconds(20));
    batcher.submit(late);
    REQUIRE(finished(*late));
    CHECK(steady_clock::now() - start < std::chrono::seconds(2));
    CHECK(late->result().status().code() == absl::StatusCode::kDeadlineExceeded);
    CHECK(batcher.queued() == 0);
    batcher.addIncoming(-1);
  }

  batcher.stop();
  CHECK(counters.skipped == 1);
  CHECK(counters.skipped_ids == std::vector<std::string>{"late"});
  for (const auto& batch : model.batches()) {
    for (const std::string& id : batch) {
      CHECK(id != "late");
    }
  }
  CHECK(counters.releases == static_cast<int>(model.batches().size() == 0 ? 1 : 3));
}

TEST_CASE("Batcher: a call abandoned while queued never reaches the model") {
  GateModel model;
  Counters counters;
  Batcher batcher(model, config(8, milliseconds(10'000)), counters.releaseSlot(),
                  counters.observer());
  OpenOnExit guard{model};

  SUBCASE("abandoned behind a running batch") {
    model.shut();
    auto first = makeCall("first", 0.0f);
    batcher.submit(first);
    REQUIRE(model.waitForBatches(1));
    auto gone = makeCall("gone", 1.0f);
    auto kept = makeCall("kept", 2.0f);
    batcher.submit(gone);
    batcher.submit(kept);
    gone->abandoned = true;
    batcher.wake();
    model.open();
    REQUIRE(finished(*gone));
    REQUIRE(finished(*kept));
    CHECK(kept->result().ok());
    CHECK(model.batches() == Batches{{"first"}, {"kept"}});
    batcher.stop();
    CHECK(counters.releases == 3);
  }
  SUBCASE("abandoned while the batch waits for more: wake() frees the slot now") {
    batcher.addIncoming(1);
    auto gone = makeCall("gone", 1.0f);
    batcher.submit(gone);
    CHECK(batcher.queued() == 1);
    gone->abandoned = true;
    batcher.wake();
    REQUIRE(finished(*gone));
    CHECK(batcher.queued() == 0);
    CHECK(counters.releases == 1);
    batcher.addIncoming(-1);
    batcher.stop();
    CHECK(model.batches().empty());
    CHECK(counters.releases == 1);
  }
  CHECK(gone_code_is_deadline_exceeded_placeholder == 0);
}

}  // namespace
}  // namespace serve
