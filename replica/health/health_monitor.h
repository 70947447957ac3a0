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
#include <string>
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
  // UNHEALTHY until a later check passes; `why` says what failed.
  void setModelHealthy(bool healthy, std::string why = {});
  // Why the state is not healthy, for the manager ("check_health raised RuntimeError: x",
  // "queued work made no progress for 30000 ms", "draining"); empty when healthy.
  std::string reason() const;

 private:
  void watch();

  StallProbe probe_;
  const std::chrono::milliseconds stall_limit_;
  std::function<void(HealthState)> on_change_;
  std::atomic<bool> stalled_{false};
  std::atomic<bool> draining_{false};
  std::atomic<bool> model_unhealthy_{false};
  mutable std::mutex reason_mu_;
  std::string model_reason_;  // guarded by reason_mu_

  std::mutex mu_;  // guards stop_
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace serve
