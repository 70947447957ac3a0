#pragma once

// When to run a batch: a pure function of the batcher's queue and the clock.
//
//   - a full batch (max_batch_size queued) runs at once;
//   - the oldest queued request never waits longer than batch_wait_timeout;
//   - when nothing more is on its way to the queue (`incoming` == 0), what is queued runs at
//     once: waiting could only add latency, never a request. This is what keeps a lone request
//     from paying the batch wait. Under load, batches still form while the model is busy with
//     the previous one.
//   - linger (linger_fraction > 0): right after a pass, an idle model may wait a little for the
//     callers that pass just answered. A closed-loop client sends its next request as soon as
//     it has its answer; without the wait, the calls that queued during the pass run at once
//     and the two groups alternate, so batches settle at about half the callers (measured:
//     docs/benchmarks.md). The wait lasts until the queue holds what was queued when the pass
//     ended plus the calls it answered (never more than max_batch_size), and at most
//     linger_fraction of the last pass's duration after it ended, capped by batch_wait_timeout.
//     A window shorter than min_linger_window is skipped: passes that short (a GPU's 0.1 ms)
//     end before any caller can come back. The batcher also turns the rule off for a while
//     after a wait that did not fill (`linger_allowed`), so callers that come back more slowly
//     than the window cost little.
#include <chrono>
#include <cstddef>

namespace serve {

struct BatchConfig {
  size_t max_batch_size = 1;
  std::chrono::nanoseconds batch_wait_timeout{0};
  double linger_fraction = 0;  // 0: never wait for the last pass's callers
  // A linger window shorter than this is not worth waiting: no caller gets an answer and sends
  // again over loopback HTTP that fast (about 0.1 ms at best, measured on an H100 machine), so
  // with passes this short (a GPU's) waiting could only idle the model.
  std::chrono::nanoseconds min_linger_window = std::chrono::microseconds(200);
};

struct BatchQueueView {
  using TimePoint = std::chrono::steady_clock::time_point;
  size_t queued = 0;    // requests waiting in the batcher's queue
  TimePoint oldest{};   // when the oldest of them was queued
  size_t incoming = 0;  // requests accepted by the replica that will reach the queue
  TimePoint now{};

  // The previous forward pass, for the linger rule.
  struct LastPass {
    TimePoint ended{};
    std::chrono::nanoseconds duration{0};
    size_t answered = 0;       // calls it completed
    size_t queued_at_end = 0;  // calls waiting when it ended
  } last;
  bool linger_allowed = false;
};

struct BatchDecision {
  enum class Action { kIdle, kRun, kWaitUntil };
  Action action = Action::kIdle;
  size_t count = 0;                                    // kRun: how many to take
  std::chrono::steady_clock::time_point wait_until{};  // kWaitUntil
  // kWaitUntil because of the linger rule: the batch it waits to fill up to.
  size_t linger_target = 0;
};

BatchDecision decideBatch(const BatchConfig& config, const BatchQueueView& view);

}  // namespace serve
