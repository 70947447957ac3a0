#include "replica/batch/batch_policy.h"

#include <algorithm>

namespace serve {

BatchDecision decideBatch(const BatchConfig& config, const BatchQueueView& view) {
  BatchDecision d;
  if (view.queued == 0) {
    return d;
  }
  size_t max_batch = std::max<size_t>(1, config.max_batch_size);
  auto deadline = view.oldest + config.batch_wait_timeout;
  if (view.queued >= max_batch || view.now >= deadline || view.incoming == 0) {
    d.action = BatchDecision::Action::kRun;
    d.count = std::min(view.queued, max_batch);
    return d;
  }
  d.action = BatchDecision::Action::kWaitUntil;
  d.wait_until = deadline;
  return d;
}

}  // namespace serve
