#include "replica/health/health_monitor.h"

#include <spdlog/spdlog.h>

namespace serve {

HealthMonitor::HealthMonitor(StallProbe probe, std::chrono::milliseconds stall_limit,
                             std::function<void(HealthState)> on_change)
    : probe_(std::move(probe)), stall_limit_(stall_limit), on_change_(std::move(on_change)) {
  if (stall_limit_.count() > 0) {
    thread_ = std::thread([this] { watch(); });
  }
}

HealthMonitor::~HealthMonitor() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

HealthState HealthMonitor::state() const {
  if (draining_.load(std::memory_order_relaxed)) {
    return HealthState::kDraining;
  }
  return stalled_.load(std::memory_order_relaxed) ||
                 model_unhealthy_.load(std::memory_order_relaxed)
             ? HealthState::kUnhealthy
             : HealthState::kHealthy;
}

void HealthMonitor::setModelHealthy(bool healthy, std::string why) {
  {
    std::lock_guard lock(reason_mu_);
    model_reason_ = healthy ? std::string() : std::move(why);
  }
  const bool was_unhealthy = model_unhealthy_.exchange(!healthy);
  if (was_unhealthy == healthy && on_change_) {
    on_change_(state());
  }
}

std::string HealthMonitor::reason() const {
  if (draining_.load(std::memory_order_relaxed)) {
    return "draining";
  }
  std::string why;
  if (model_unhealthy_.load(std::memory_order_relaxed)) {
    std::lock_guard lock(reason_mu_);
    why = model_reason_.empty() ? "the model's health check failed" : model_reason_;
  }
  if (stalled_.load(std::memory_order_relaxed)) {
    why += why.empty() ? "" : "; ";
    why += "queued work made no progress for the watchdog's limit";
  }
  return why;
}

void HealthMonitor::startDraining() {
  draining_.store(true);
  if (on_change_) {
    on_change_(HealthState::kDraining);
  }
}

void HealthMonitor::watch() {
  // Check four times per limit: a stall is reported at most a quarter of the limit late.
  auto period = std::max(std::chrono::milliseconds(5), stall_limit_ / 4);
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, period, [this] { return stop_; })) {
    auto stalled_for = probe_(std::chrono::steady_clock::now());
    bool stalled = stalled_for >= stall_limit_;
    if (stalled != stalled_.exchange(stalled)) {
      if (stalled) {
        spdlog::error("watchdog: queued work made no progress for {} ms; reporting UNHEALTHY",
                      std::chrono::duration_cast<std::chrono::milliseconds>(stalled_for).count());
      } else {
        spdlog::info("watchdog: work is progressing again; reporting healthy");
      }
      if (on_change_) {
        on_change_(state());
      }
    }
  }
}

}  // namespace serve
