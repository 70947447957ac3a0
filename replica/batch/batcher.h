#pragma once

// The dynamic batcher: one thread per model that gathers queued calls into batches as
// decideBatch() says, runs one forward pass per batch and hands each caller its own result.
// With batching on, one pass runs at a time (batches form while it runs); with batching off,
// up to Model::maxConcurrentPasses() single-request passes run at once. A model that runs
// asynchronously (Model::runsAsync) is handed each pass without a thread blocking on it, by the
// caller or the batcher thread, so its passes overlap up to that limit.
// Calls arrive holding an admission slot; the batcher gives the slot back (release_slot) when
// the call is finished, run or skipped, so max_ongoing_requests bounds what the model sees.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "replica/batch/batch_policy.h"
#include "replica/batch/call.h"
#include "replica/runtime/model.h"

namespace serve {

struct BatchObserver {
  // After each forward pass: its size, how long its oldest call waited in the queue, and how
  // long the pass took.
  std::function<void(size_t size, std::chrono::nanoseconds oldest_wait,
                     std::chrono::nanoseconds run_time)>
      on_batch;
  // A call dropped before reaching the model (its deadline passed or its caller left).
  std::function<void(const Call&)> on_skipped;
};

class Batcher {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  Batcher(Model& model, BatchConfig config, std::function<void()> release_slot,
          BatchObserver observer = {});
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues a call whose caller holds an admission slot.
  void submit(std::shared_ptr<Call> call);

  // Requests accepted by the replica and on their way to submit() (+1 when one starts, -1 when
  // it gets there or fails first); the batch policy does not wait when none are coming.
  void addIncoming(int delta);

  // A caller abandoned its call: wake the batcher so a queued call frees its slot now.
  void wake();

  // Runs every queued call, then joins the thread.
  void stop();

  size_t queued() const;
  // How long queued or running work has gone without progress (0 when idle): the watchdog's
  // input. Progress is a finished forward pass.
  std::chrono::nanoseconds stalledFor(TimePoint now) const;

 private:
  void loop();
  // Calls that no longer need running are answered by their front end already; drop them.
  void dropAbandonedLocked(TimePoint now, std::vector<std::shared_ptr<Call>>& dropped);
  void finish(std::vector<std::shared_ptr<Call>>& dropped);
  // Takes the first `count` calls and settles a linger that was waiting for them.
  void takeFrontLocked(size_t count, std::vector<std::shared_ptr<Call>>& batch);
  bool takeInlineBatchLocked(TimePoint now, std::vector<std::shared_ptr<Call>>& batch);
  BatchQueueView viewLocked(TimePoint now) const;
  // After a forward pass: what the linger rule needs to know about it.
  void recordPassLocked(TimePoint ended, std::chrono::nanoseconds duration, size_t answered);
  // One forward pass; completes every call and gives back their slots. Runs unlocked. Returns
  // how long the model took.
  std::chrono::nanoseconds runBatch(std::vector<std::shared_ptr<Call>>& batch);
  // For a model that runs asynchronously: starts the pass and returns; its completion answers
  // the calls, gives back their slots and ends the pass (running_). Runs unlocked.
  void startBatch(std::vector<std::shared_ptr<Call>>& batch);
  // Hands each call its result (or an error for a missing one) and gives back the slots; a
  // streaming result keeps its slot until the stream ends.
  void completeBatch(std::vector<std::shared_ptr<Call>>& batch,
                     std::vector<StatusOr<InferResponse>>& results, TimePoint started,
                     TimePoint ended);

  Model& model_;
  const BatchConfig config_;
  const int max_concurrent_;  // forward passes allowed at once
  const std::function<void()> release_slot_;
  const BatchObserver observer_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Call>> queue_;
  long incoming_ = 0;
  int running_ = 0;  // forward passes in progress, on the batcher thread or callers' threads
  bool stopping_ = false;
  TimePoint busy_since_{};     // when the batcher last went from idle to having work
  TimePoint last_progress_{};  // when the last forward pass finished
  // The linger rule (batch_policy.h): the last pass, the batch a linger in progress waits for
  // (0: none), and the back-off after lingers that did not fill: skip the rule for
  // linger_skip_ passes, doubling up to kMaxLingerBackoff after each miss.
  BatchQueueView::LastPass last_pass_;
  size_t linger_target_ = 0;
  size_t linger_skip_ = 0;
  size_t linger_backoff_ = 1;

  std::thread thread_;  // started last, after every member it reads
};

}  // namespace serve
