#include "haproxy-manager/supervise/port_allocator.h"

#include "absl/strings/str_cat.h"

namespace serve::manager {

PortAllocator::PortAllocator(std::string what, int min, int max,
                             std::chrono::milliseconds quarantine)
    : what_(std::move(what)), min_(min), max_(max), quarantine_(quarantine) {}

StatusOr<int> PortAllocator::allocate(Clock::time_point now) {
  int quarantined = 0;
  for (int port = min_; port < max_; ++port) {
    if (in_use_.count(port) > 0 || blocked_.count(port) > 0) {
      continue;
    }
    auto q = quarantined_until_.find(port);
    if (q != quarantined_until_.end()) {
      if (now < q->second) {
        ++quarantined;
        continue;
      }
      quarantined_until_.erase(q);
    }
    in_use_.insert(port);
    return port;
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("no free ", what_, " port in [", min_, ", ", max_, "): ", in_use_.size(),
                   " in use, ", quarantined, " quarantined after release, ", blocked_.size(),
                   " blocked (they failed to bind); widen the range or run fewer replicas"));
}

void PortAllocator::markInUse(int port) { in_use_.insert(port); }

void PortAllocator::release(int port, Clock::time_point now) {
  if (in_use_.erase(port) > 0) {
    quarantined_until_[port] = now + quarantine_;
  }
}

void PortAllocator::block(int port) {
  in_use_.erase(port);
  blocked_.insert(port);
}

}  // namespace serve::manager
