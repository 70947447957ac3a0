#pragma once

// The replica's health as /-/healthz and /v2/health/* report it. Reading it is one atomic
// load, so health answers never wait behind inference. A watchdog thread turns the replica
// UNHEALTHY while queued or running work has made no progress for `stall_limit`, and healthy
// again as soon as it does; draining overrides both.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace serve {

enum class HealthState { kHealthy, kUnhealthy, kDraining };

class HealthMonitor {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using StallProbe = std::function<std::chrono::nanoseconds(TimePoint now)>;

  // stall_limit <= 0 disables the watchdog.
  HealthMonitor(StallProbe probe, std::chrono::milliseconds stall_limit,
                std::function<void(HealthState)> on_change = {});
  ~HealthMonitor();

  HealthState state() const;
  void startDraining();
  // The model's own health check (a Python class's check_health): false makes the replica
  // UNHEALTHY until a later check passes.
  void setModelHealthy(bool healthy);

 private:
  void watch();

  StallProbe probe_;
  const std::chrono::milliseconds stall_limit_;
  std::function<void(HealthState)> on_change_;
  std::atomic<bool> stalled_{false};
  std::atomic<bool> draining_{false};
  std::atomic<bool> model_unhealthy_{false};

  std::mutex mu_;  // guards stop_
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace serve
