#pragma once

// The control loop's decisions, without I/O: given the routing table HAProxy runs, the table
// the inputs ask for and the time, what to do next: nothing, runtime commands, wait for the
// coalescing window, or one reload; and how the state moves when that action succeeded or
// failed. The manager (manager.cc) feeds it and carries out its steps over the runtime API and
// the HAProxy process; the unit tests drive it with tables of cases and a hand-moved time.
//
// Rules it keeps:
//   - Runtime commands apply at once; a change that needs a reload waits `coalesce` from the
//     first such change, so a burst of registrations or deploys costs one reload.
//   - Runtime commands that fail fall back to a reload at once (no window: the table is unknown).
//   - A table that failed to reload (refused by `haproxy -c`, or a failed reload) is not tried
//     again until a new change arrives (a new generation), so a bad deploy is not retried in a
//     loop; any new change, even one that leads to the same table, tries again.
//   - Draining slots are timed from when they started draining; a reload or restart frees them
//     (the new worker has nothing in flight on them).
//   - With nothing to do, HAProxy is compared with the table once per `drift_period`.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/clock.h"
#include "haproxy-manager/diff/differ.h"
#include "haproxy-manager/model/desired_state.h"
#include "haproxy-manager/model/routing_table.h"

namespace serve::manager {

struct ReconcilerSettings {
  Clock::duration coalesce = std::chrono::milliseconds(100);  // RAY_SERVE_..._COALESCE_S
  Clock::duration drift_period = std::chrono::seconds(1);
};

enum class StepAction {
  kNone,        // HAProxy runs the desired table
  kRuntime,     // send step.plan.commands
  kWait,        // a reload is due at step.due; come back then
  kReload,      // reload to step.desired for step.plan.reload_reasons
  kSuppressed,  // this table failed to reload and nothing changed since: wait for a change
};

struct Step {
  StepAction action = StepAction::kNone;
  RoutingTable desired;
  Plan plan;
  Clock::time_point due{};   // kWait: when the coalescing window closes
  bool check_drift = false;  // kNone: the periodic comparison with HAProxy is due
};

const char* stepActionName(StepAction action);

// After a reload or restart the new worker has nothing in flight on draining slots: they are
// free there.
RoutingTable withDrainingFreed(RoutingTable table);

class Reconciler {
 public:
  explicit Reconciler(ReconcilerSettings settings) : settings_(settings) {}

  // What to do for `desired` (built from the inputs of change `generation`) at `now`.
  Step next(const RoutingTable& desired, std::uint64_t generation, Clock::time_point now);
  // The runtime commands of a kRuntime step failed: the next step is a reload of the same table,
  // with no coalescing (or kSuppressed when that table already failed for this generation).
  Step runtimeFailed(const Step& step, const std::string& error, std::uint64_t generation,
                     Clock::time_point now);

  // Outcomes, reported by the manager after carrying out a step.
  void runtimeApplied(const RoutingTable& desired, Clock::time_point now);
  void reloaded(const RoutingTable& desired);
  void reloadFailed(const RoutingTable& desired, std::uint64_t generation);
  // HAProxy was restarted (from withDrainingFreed(running())).
  void restarted();
  // HAProxy was started, or adopted from an earlier manager, running `table`.
  void startedWith(RoutingTable table);

  const RoutingTable& running() const { return running_; }
  // Draining slots and since when; the manager samples HAProxy for the idle ones.
  const std::map<SlotRef, Clock::time_point>& drainStarted() const { return drain_started_; }
  // The earliest time the loop must wake for a pending reload; nullopt when none is pending.
  std::optional<Clock::time_point> reloadDue() const;

 private:
  Step reloadStep(Step step, std::uint64_t generation, Clock::time_point now);

  ReconcilerSettings settings_;
  RoutingTable running_;
  std::optional<Clock::time_point> reload_pending_since_;
  std::optional<RoutingTable> failed_desired_;
  std::uint64_t failed_generation_ = 0;
  std::map<SlotRef, Clock::time_point> drain_started_;
  std::optional<Clock::time_point> last_drift_check_;
};

}  // namespace serve::manager
