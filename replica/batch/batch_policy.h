#pragma once

// When to run a batch: a pure function of the batcher's queue and the clock.
//
//   - a full batch (max_batch_size queued) runs at once;
//   - the oldest queued request never waits longer than batch_wait_timeout;
//   - when nothing more is on its way to the queue (`incoming` == 0), what is queued runs at
//     once: waiting could only add latency, never a request. This is what keeps a lone request
//     from paying the batch wait. Under load, batches still form while the model is busy with
//     the previous one.
#include <chrono>
#include <cstddef>

namespace serve {

struct BatchConfig {
  size_t max_batch_size = 1;
  std::chrono::nanoseconds batch_wait_timeout{0};
};

struct BatchQueueView {
  using TimePoint = std::chrono::steady_clock::time_point;
  size_t queued = 0;    // requests waiting in the batcher's queue
  TimePoint oldest{};   // when the oldest of them was queued
  size_t incoming = 0;  // requests accepted by the replica that will reach the queue
  TimePoint now{};
};

struct BatchDecision {
  enum class Action { kIdle, kRun, kWaitUntil };
  Action action = Action::kIdle;
  size_t count = 0;                                    // kRun: how many to take
  std::chrono::steady_clock::time_point wait_until{};  // kWaitUntil
};

BatchDecision decideBatch(const BatchConfig& config, const BatchQueueView& view);

}  // namespace serve
