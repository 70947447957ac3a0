#pragma once

// Time as the manager's logic sees it: an interface, so that unit tests drive coalescing
// windows, drain timeouts and restart backoff with a fake clock instead of sleeping. Production
// code takes a `const Clock&` and is given steadyClock(); only code that must block on a real
// condition (a socket, a condition variable) reads std::chrono directly.
#include <chrono>
#include <mutex>

namespace serve {

class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;

  virtual ~Clock() = default;
  virtual time_point now() const = 0;
};

// std::chrono::steady_clock behind the interface; one shared instance.
class SteadyClock final : public Clock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
};

inline const Clock& steadyClock() {
  static const SteadyClock clock;
  return clock;
}

// A clock that moves only when told to; for tests. Thread-safe, so a test may advance it while
// the code under test reads it from another thread.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(time_point start = time_point{} + std::chrono::hours(1)) : now_(start) {}

  time_point now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }
  void advance(duration by) {
    std::lock_guard lock(mu_);
    now_ += by;
  }

 private:
  mutable std::mutex mu_;
  time_point now_;
};

}  // namespace serve
