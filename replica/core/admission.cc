#include "replica/core/admission.h"

#include <algorithm>

namespace serve {

Admission::Admission(int max_ongoing, int max_queued)
    : max_ongoing_(max_ongoing), max_queued_(max_queued) {}

Admission::Outcome Admission::acquire(TimePoint deadline, const std::function<bool()>& cancelled,
                                      std::chrono::milliseconds poll) {
  std::unique_lock lock(mu_);
  if (ongoing_ < max_ongoing_ && waiters_.empty()) {
    ++ongoing_;
    return Outcome::kAdmitted;
  }
  if (max_queued_ >= 0 && static_cast<int>(waiters_.size()) >= max_queued_) {
    return Outcome::kRejected;
  }
  Waiter self;
  waiters_.push_back(&self);
  Outcome outcome = Outcome::kAdmitted;
  while (!self.granted) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      outcome = Outcome::kTimedOut;
      break;
    }
    if (cancelled && cancelled()) {
      outcome = Outcome::kCancelled;
      break;
    }
    auto until = cancelled ? std::min(deadline, now + poll) : deadline;
    self.cv.wait_until(lock, until);
  }
  if (self.granted) {
    return Outcome::kAdmitted;  // granted wins over a deadline that passed at the same moment
  }
  waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &self));
  return outcome;
}

void Admission::release() {
  Waiter* next = nullptr;
  {
    std::lock_guard lock(mu_);
    if (waiters_.empty()) {
      --ongoing_;
      return;
    }
    // The slot passes to the oldest waiter without ever being free.
    next = waiters_.front();
    waiters_.pop_front();
    next->granted = true;
    next->cv.notify_one();  // under the lock: the waiter's stack frame owns the cv
  }
}

int Admission::ongoing() const {
  std::lock_guard lock(mu_);
  return ongoing_;
}

int Admission::queued() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(waiters_.size());
}

}  // namespace serve
