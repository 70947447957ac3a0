#pragma once

// Admission control: at most `max_ongoing` requests hold a slot; up to `max_queued` more wait
// for one in arrival order (-1 = no limit); anything beyond is rejected at once. A released
// slot is handed straight to the oldest waiter, so waiters are served first-come first-served
// and a newcomer cannot overtake them.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>

namespace serve {

class Admission {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  enum class Outcome {
    kAdmitted,   // the caller holds a slot and must release() it
    kRejected,   // queue full: backpressure
    kTimedOut,   // the deadline passed while waiting
    kCancelled,  // cancelled() returned true while waiting
  };

  Admission(int max_ongoing, int max_queued);

  // Takes a slot, waiting for one if needed. `cancelled` is polled every `poll` while waiting
  // (a client that went away); it may be empty.
  Outcome acquire(TimePoint deadline, const std::function<bool()>& cancelled,
                  std::chrono::milliseconds poll = std::chrono::milliseconds(20));
  void release();

  int ongoing() const;
  int queued() const;
  int maxOngoing() const { return max_ongoing_; }

 private:
  struct Waiter {
    std::condition_variable cv;
    bool granted = false;
  };

  const int max_ongoing_;
  const int max_queued_;
  mutable std::mutex mu_;  // guards ongoing_ and waiters_
  int ongoing_ = 0;
  std::deque<Waiter*> waiters_;
};

}  // namespace serve
