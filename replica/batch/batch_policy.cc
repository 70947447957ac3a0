#include "replica/batch/batch_policy.h"

#include <algorithm>

namespace serve {

BatchDecision decideBatch(const BatchConfig& config, const BatchQueueView& view) {
  BatchDecision d;
  if (view.queued == 0) {
    return d;
  }
  size_t max_batch = std::max<size_t>(1, config.max_batch_size);
  if (view.queued >= max_batch) {
    d.action = BatchDecision::Action::kRun;
    d.count = max_batch;
    return d;
  }
  if (config.linger_fraction > 0 && view.linger_allowed && view.last.answered > 0) {
    const size_t target = std::min(max_batch, view.last.queued_at_end + view.last.answered);
    const auto span = std::min(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   view.last.duration * config.linger_fraction),
                               config.batch_wait_timeout);
    const auto until = view.last.ended + span;
    if (view.queued < target && view.now < until && span >= config.min_linger_window) {
      d.action = BatchDecision::Action::kWaitUntil;
      d.wait_until = until;
      d.linger_target = target;
      return d;
    }
  }
  auto deadline = view.oldest + config.batch_wait_timeout;
  if (view.now >= deadline || view.incoming == 0) {
    d.action = BatchDecision::Action::kRun;
    d.count = view.queued;
    return d;
  }
  d.action = BatchDecision::Action::kWaitUntil;
  d.wait_until = deadline;
  return d;
}

}  // namespace serve
