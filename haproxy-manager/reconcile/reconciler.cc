#include "haproxy-manager/reconcile/reconciler.h"

#include <utility>

namespace serve::manager {

const char* stepActionName(StepAction action) {
  switch (action) {
    case StepAction::kNone:
      return "none";
    case StepAction::kRuntime:
      return "runtime";
    case StepAction::kWait:
      return "wait";
    case StepAction::kReload:
      return "reload";
    case StepAction::kSuppressed:
      return "suppressed";
  }
  return "unknown";
}

RoutingTable withDrainingFreed(RoutingTable table) {
  for (Backend& backend : table.backends) {
    for (Slot& slot : backend.slots) {
      if (slot.state == SlotState::kDraining) {
        slot = Slot{};
      }
    }
  }
  return table;
}

Step Reconciler::next(const RoutingTable& desired, std::uint64_t generation,
                      Clock::time_point now) {
  Step step;
  step.desired = desired;
  step.plan = diff(running_, desired);
  if (step.plan.empty()) {
    reload_pending_since_.reset();
    step.action = StepAction::kNone;
    if (!last_drift_check_.has_value() || now - *last_drift_check_ >= settings_.drift_period) {
      last_drift_check_ = now;
      step.check_drift = true;
    }
    return step;
  }
  if (!step.plan.needsReload()) {
    step.action = StepAction::kRuntime;
    return step;
  }
  return reloadStep(std::move(step), generation, now);
}

Step Reconciler::runtimeFailed(const Step& step, const std::string& error, std::uint64_t generation,
                               Clock::time_point now) {
  Step reload = step;
  reload.plan.commands.clear();
  reload.plan.reload_reasons = {{"runtime_error", "runtime commands failed: " + error}};
  // No coalescing: what HAProxy runs is unknown until the reload.
  reload_pending_since_ = now - settings_.coalesce;
  return reloadStep(std::move(reload), generation, now);
}

Step Reconciler::reloadStep(Step step, std::uint64_t generation, Clock::time_point now) {
  if (failed_desired_.has_value() && *failed_desired_ == step.desired &&
      failed_generation_ == generation) {
    step.action = StepAction::kSuppressed;
    return step;
  }
  if (!reload_pending_since_.has_value()) {
    reload_pending_since_ = now;
  }
  step.due = *reload_pending_since_ + settings_.coalesce;
  if (now < step.due) {
    step.action = StepAction::kWait;
    return step;
  }
  reload_pending_since_.reset();
  step.action = StepAction::kReload;
  return step;
}

void Reconciler::runtimeApplied(const RoutingTable& desired, Clock::time_point now) {
  for (const Backend& backend : desired.backends) {
    for (std::size_t i = 0; i < backend.slots.size(); ++i) {
      const SlotRef ref{backend.application, i};
      if (backend.slots[i].state == SlotState::kDraining) {
        drain_started_.try_emplace(ref, now);
      } else {
        drain_started_.erase(ref);
      }
    }
  }
  running_ = desired;
}

void Reconciler::reloaded(const RoutingTable& desired) {
  running_ = withDrainingFreed(desired);
  drain_started_.clear();
  failed_desired_.reset();
}

void Reconciler::reloadFailed(const RoutingTable& desired, std::uint64_t generation) {
  failed_desired_ = desired;
  failed_generation_ = generation;
}

void Reconciler::restarted() {
  running_ = withDrainingFreed(running_);
  drain_started_.clear();
}

void Reconciler::startedWith(RoutingTable table) {
  running_ = std::move(table);
  drain_started_.clear();
}

std::optional<Clock::time_point> Reconciler::reloadDue() const {
  if (!reload_pending_since_.has_value()) {
    return std::nullopt;
  }
  return *reload_pending_since_ + settings_.coalesce;
}

}  // namespace serve::manager
