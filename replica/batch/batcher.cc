#include "replica/batch/batcher.h"

#include <algorithm>

namespace serve {

using std::chrono::steady_clock;

namespace {

// Passes without lingering after a linger that did not fill, at most.
constexpr size_t kMaxLingerBackoff = 64;

}  // namespace

Batcher::Batcher(Model& model, BatchConfig config, std::function<void()> release_slot,
                 BatchObserver observer)
    : model_(model),
      config_(config),
      // Batches form only when passes wait for each other; with batching off, a model that
      // allows it runs several single-request passes at once.
      max_concurrent_(config.max_batch_size > 1 ? 1 : std::max(1, model.maxConcurrentPasses())),
      release_slot_(std::move(release_slot)),
      observer_(std::move(observer)) {
  thread_ = std::thread([this] { loop(); });
}

Batcher::~Batcher() { stop(); }

void Batcher::submit(std::shared_ptr<Call> call) {
  std::vector<std::shared_ptr<Call>> batch;
  {
    std::lock_guard lock(mu_);
    auto now = steady_clock::now();
    call->queued_at = now;
    if (queue_.empty() && running_ == 0) {
      busy_since_ = now;
    }
    queue_.push_back(std::move(call));
    // Caller runs: when the model is idle and the policy would run the queue now, run it on
    // this thread instead of waking the batcher thread, saving two thread hand-offs per
    // request at low load. Only for calls without a deadline: a thread running the model
    // cannot also answer 408 at a deadline that falls mid-pass, which the batcher thread's
    // callers can.
    if (running_ < max_concurrent_ && !stopping_ && takeInlineBatchLocked(now, batch)) {
      ++running_;
    }
  }
  if (batch.empty()) {
    cv_.notify_one();
    return;
  }
  if (model_.runsAsync()) {
    startBatch(batch);  // its completion ends the pass
    return;
  }
  const size_t answered = batch.size();
  const std::chrono::nanoseconds took = runBatch(batch);
  bool more = false;
  {
    std::lock_guard lock(mu_);
    --running_;
    recordPassLocked(steady_clock::now(), took, answered);
    more = !queue_.empty() || stopping_;
  }
  if (more) {
    cv_.notify_one();  // what queued meanwhile is the batcher thread's
  }
}

bool Batcher::takeInlineBatchLocked(TimePoint now, std::vector<std::shared_ptr<Call>>& batch) {
  for (const auto& c : queue_) {
    // Calls with deadlines, and abandoned calls (which the batcher thread drops and counts),
    // are left to the batcher thread. (A caller that only starts an asynchronous pass still
    // waits for its deadline, so those may have one.)
    if ((c->deadline != TimePoint::max() && !model_.runsAsync()) || c->abandoned.load()) {
      return false;
    }
  }
  BatchDecision decision = decideBatch(config_, viewLocked(now));
  if (decision.action != BatchDecision::Action::kRun) {
    return false;
  }
  takeFrontLocked(decision.count, batch);
  return true;
}

BatchQueueView Batcher::viewLocked(TimePoint now) const {
  BatchQueueView view;
  view.queued = queue_.size();
  view.oldest = queue_.empty() ? now : queue_.front()->queued_at;
  view.incoming = stopping_ ? 0 : static_cast<size_t>(std::max<long>(0, incoming_));
  view.now = now;
  view.last = last_pass_;
  view.linger_allowed = !stopping_ && linger_skip_ == 0;
  return view;
}

void Batcher::recordPassLocked(TimePoint ended, std::chrono::nanoseconds duration,
                               size_t answered) {
  last_progress_ = ended;
  last_pass_.ended = ended;
  last_pass_.duration = duration;
  last_pass_.answered = answered;
  last_pass_.queued_at_end = queue_.size();
  if (linger_skip_ > 0) {
    --linger_skip_;
  }
}

void Batcher::takeFrontLocked(size_t count, std::vector<std::shared_ptr<Call>>& batch) {
  if (linger_target_ > 0) {
    // A linger that gathered its batch keeps the rule on; one that ran out of time turns it
    // off for longer each time, so callers that return too slowly stop costing model time.
    if (count >= linger_target_) {
      linger_backoff_ = 1;
    } else {
      linger_skip_ = linger_backoff_;
      linger_backoff_ = std::min(linger_backoff_ * 2, kMaxLingerBackoff);
    }
    linger_target_ = 0;
  }
  auto end = queue_.begin() + static_cast<long>(count);
  batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(end));
  queue_.erase(queue_.begin(), end);
}

std::chrono::nanoseconds Batcher::runBatch(std::vector<std::shared_ptr<Call>>& batch) {
  std::vector<const InferRequest*> requests;
  requests.reserve(batch.size());
  for (const auto& c : batch) {
    requests.push_back(&c->request);
  }
  auto started = steady_clock::now();
  std::vector<StatusOr<InferResponse>> results = model_.run(requests);
  auto ended = steady_clock::now();
  completeBatch(batch, results, started, ended);
  batch.clear();
  return ended - started;
}

void Batcher::startBatch(std::vector<std::shared_ptr<Call>>& batch) {
  auto calls = std::make_shared<std::vector<std::shared_ptr<Call>>>(std::move(batch));
  batch.clear();
  auto requests = std::make_shared<std::vector<const InferRequest*>>();
  requests->reserve(calls->size());
  for (const auto& c : *calls) {
    requests->push_back(&c->request);
  }
  const auto started = steady_clock::now();
  model_.runAsync(*requests,
                  [this, calls, requests, started](std::vector<StatusOr<InferResponse>> results) {
                    const auto ended = steady_clock::now();
                    completeBatch(*calls, results, started, ended);
                    {
                      std::lock_guard lock(mu_);
                      --running_;
                      recordPassLocked(ended, ended - started, calls->size());
                    }
                    cv_.notify_one();
                  });
}

void Batcher::completeBatch(std::vector<std::shared_ptr<Call>>& batch,
                            std::vector<StatusOr<InferResponse>>& results, TimePoint started,
                            TimePoint ended) {
  for (size_t i = 0; i < batch.size(); ++i) {
    // The slot goes back before the caller wakes: a client that sends its next request the
    // moment it has this answer must find the slot free. A streaming answer keeps it until the
    // stream ends, so max_ongoing_requests bounds the streams in progress too.
    if (i < results.size() && results[i].ok() && isStreaming(*results[i])) {
      onStreamEnd(*results[i], release_slot_);
    } else {
      release_slot_();
    }
    if (i < results.size()) {
      batch[i]->complete(std::move(results[i]));
    } else {
      batch[i]->complete(absl::InternalError("the model returned too few results"));
    }
  }
  if (observer_.on_batch) {
    observer_.on_batch(batch.size(), started - batch.front()->queued_at, ended - started);
  }
}

void Batcher::addIncoming(int delta) {
  bool wake_now = false;
  {
    std::lock_guard lock(mu_);
    incoming_ += delta;
    // A request that will not come after all may be what a waiting batch was held for.
    wake_now = delta < 0 && incoming_ == 0 && !queue_.empty();
  }
  if (wake_now) {
    cv_.notify_one();
  }
}

void Batcher::wake() { cv_.notify_one(); }

void Batcher::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) {
    thread_.join();
  }
}

size_t Batcher::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

std::chrono::nanoseconds Batcher::stalledFor(TimePoint now) const {
  std::lock_guard lock(mu_);
  if (queue_.empty() && running_ == 0) {
    return std::chrono::nanoseconds(0);
  }
  TimePoint since = std::max(busy_since_, last_progress_);
  return std::max(std::chrono::nanoseconds(0), now - since);
}

void Batcher::dropAbandonedLocked(TimePoint now, std::vector<std::shared_ptr<Call>>& dropped) {
  auto gone = [now](const std::shared_ptr<Call>& c) {
    return c->abandoned.load() || now >= c->deadline;
  };
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (gone(*it)) {
      dropped.push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
}

void Batcher::finish(std::vector<std::shared_ptr<Call>>& dropped) {
  for (auto& call : dropped) {
    if (observer_.on_skipped) {
      observer_.on_skipped(*call);
    }
    release_slot_();
    call->complete(absl::DeadlineExceededError("dropped before reaching the model"));
  }
  dropped.clear();
}

void Batcher::loop() {
  std::vector<std::shared_ptr<Call>> dropped;
  std::vector<std::shared_ptr<Call>> batch;
  std::unique_lock lock(mu_);
  while (true) {
    auto now = steady_clock::now();
    dropAbandonedLocked(now, dropped);
    if (!dropped.empty()) {
      lock.unlock();
      finish(dropped);
      lock.lock();
      continue;
    }
    BatchDecision decision = decideBatch(config_, viewLocked(now));
    if (running_ >= max_concurrent_) {
      cv_.wait(lock);  // every pass the model allows is running; the first to end wakes us
      continue;
    }
    if (decision.action == BatchDecision::Action::kIdle) {
      if (stopping_) {
        return;
      }
      cv_.wait(lock);
      continue;
    }
    if (decision.action == BatchDecision::Action::kWaitUntil) {
      if (decision.linger_target > 0) {
        linger_target_ = decision.linger_target;
      }
      // Wake for the deadline of the oldest call too, so an expired call frees its slot.
      TimePoint until = decision.wait_until;
      for (const auto& c : queue_) {
        until = std::min(until, c->deadline);
      }
      cv_.wait_until(lock, until);
      continue;
    }
    takeFrontLocked(decision.count, batch);
    ++running_;
    const size_t answered = batch.size();
    lock.unlock();
    if (model_.runsAsync()) {
      startBatch(batch);
      lock.lock();
      continue;
    }
    const std::chrono::nanoseconds took = runBatch(batch);
    lock.lock();
    --running_;
    recordPassLocked(steady_clock::now(), took, answered);
  }
}

}  // namespace serve
