// How many forward passes run at once: several when batching is off and the model allows it,
// one when batching is on.
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "replica/batch/batcher.h"

namespace serve {
namespace {

// Blocks every pass until released, and records how many ran at the same time.
class GateModel : public Model {
 public:
  explicit GateModel(int concurrency) : concurrency_(concurrency) { meta_.name = "gate"; }
  const ModelMetadata& metadata() const override { return meta_; }
  Status validate(const InferRequest&) const override { return absl::OkStatus(); }
  int maxConcurrentPasses() const override { return concurrency_; }

  std::vector<StatusOr<InferResponse>> run(std::span<const InferRequest* const> batch) override {
    std::unique_lock lock(mu_);
    ++running_;
    peak_ = std::max(peak_, running_);
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    --running_;
    std::vector<StatusOr<InferResponse>> out;
    for (const InferRequest* r : batch) {
      out.emplace_back(InferResponse{r->id, "gate", {}});
    }
    return out;
  }

  // Waits until `n` passes are inside run() at once; false after a second.
  bool waitRunning(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(1), [&] { return running_ >= n; });
  }
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  int peak() {
    std::lock_guard lock(mu_);
    return peak_;
  }

 private:
  ModelMetadata meta_;
  int concurrency_;
  std::mutex mu_;
  std::condition_variable cv_;
  int running_ = 0;
  int peak_ = 0;
  bool open_ = false;
};

std::shared_ptr<Call> makeCall(const std::string& id) {
  auto c = std::make_shared<Call>();
  c->request.id = id;
  return c;
}

// Submits `n` calls without deadlines from their own threads, as HTTP handlers would.
int peakConcurrency(int model_concurrency, size_t max_batch_size, int n) {
  GateModel model(model_concurrency);
  std::atomic<int> released{0};
  Batcher batcher(model, BatchConfig{max_batch_size, std::chrono::nanoseconds(0)},
                  [&] { ++released; });
  std::vector<std::shared_ptr<Call>> calls;
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    calls.push_back(makeCall("c" + std::to_string(i)));
  }
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] { batcher.submit(calls[i]); });
  }
  int expected = max_batch_size > 1 ? 1 : std::min(n, model_concurrency);
  bool all_running = model.waitRunning(expected);
  model.open();
  for (auto& t : threads) {
    t.join();
  }
  for (auto& c : calls) {
    REQUIRE(c->waitUntil(std::chrono::steady_clock::now() + std::chrono::seconds(5)));
    CHECK(c->result().ok());
  }
  batcher.stop();
  CHECK(released == n);
  CHECK(all_running);
  return model.peak();
}

}  // namespace

TEST_CASE("Batcher: with batching off, a reentrant model runs passes side by side") {
  CHECK(peakConcurrency(/*model_concurrency=*/4, /*max_batch_size=*/1, /*n=*/4) == 4);
}

TEST_CASE("Batcher: the model's concurrency limit holds") {
  CHECK(peakConcurrency(/*model_concurrency=*/2, /*max_batch_size=*/1, /*n=*/5) == 2);
}

TEST_CASE("Batcher: with batching on, one pass runs at a time") {
  CHECK(peakConcurrency(/*model_concurrency=*/4, /*max_batch_size=*/8, /*n=*/4) == 1);
}

}  // namespace serve
