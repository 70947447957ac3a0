#include "haproxy-manager/reconcile/reconciler.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/unit/haproxy-manager/table_builders.h"

namespace serve::manager {
namespace {

using namespace serve::manager::testing;
using std::chrono::milliseconds;

constexpr milliseconds kWindow{100};
const Clock::time_point t0 = Clock::time_point{} + std::chrono::hours(1);

Reconciler startedAt(const RoutingTable& running) {
  Reconciler r(ReconcilerSettings{kWindow, std::chrono::seconds(1)});
  r.startedWith(running);
  return r;
}

const RoutingTable kOneApp = table({backend("a", "/a", {active("a-1", 30000)})});
const RoutingTable kTwoReplicas =
    table({backend("a", "/a", {active("a-1", 30000), active("a-2", 30001)})});
const RoutingTable kDrainingFirst =
    table({backend("a", "/a", {draining("a-1", 30000), active("a-2", 30001)})});
const RoutingTable kSecondApp =
    table({backend("a", "/a", {active("a-1", 30000)}), backend("b", "/b")});
const RoutingTable kThirdApp =
    table({backend("a", "/a", {active("a-1", 30000)}), backend("b", "/b"), backend("c", "/c")});

// One call of next(): the desired table, its generation, the time after t0; what it must say.
struct Call {
  const RoutingTable* desired;
  std::uint64_t generation;
  milliseconds at;
  StepAction action;
  milliseconds due{-1};  // for kWait: the window's end after t0
};

struct Case {
  const char* name;
  std::vector<Call> calls;
};

TEST_CASE("reconciler: the step for each change, and the coalescing window") {
  const std::vector<Case> cases = {
      {"nothing changed", {{&kOneApp, 1, milliseconds(0), StepAction::kNone}}},
      {"a replica joins: runtime at once",
       {{&kTwoReplicas, 1, milliseconds(0), StepAction::kRuntime}}},
      {"an application added waits for the window, then reloads",
       {{&kSecondApp, 1, milliseconds(0), StepAction::kWait, milliseconds(100)},
        {&kSecondApp, 1, milliseconds(99), StepAction::kWait, milliseconds(100)},
        {&kSecondApp, 1, milliseconds(100), StepAction::kReload}}},
      {"a burst costs one reload: the window runs from the first change",
       {{&kSecondApp, 1, milliseconds(0), StepAction::kWait, milliseconds(100)},
        {&kThirdApp, 2, milliseconds(60), StepAction::kWait, milliseconds(100)},
        {&kThirdApp, 3, milliseconds(100), StepAction::kReload}}},
      {"a change that no longer needs a reload closes the window",
       {{&kSecondApp, 1, milliseconds(0), StepAction::kWait, milliseconds(100)},
        {&kOneApp, 2, milliseconds(50), StepAction::kNone},
        {&kSecondApp, 3, milliseconds(70), StepAction::kWait, milliseconds(170)}}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    Reconciler r = startedAt(kOneApp);
    for (std::size_t i = 0; i < c.calls.size(); ++i) {
      const Call& call = c.calls[i];
      CAPTURE(i);
      const Step step = r.next(*call.desired, call.generation, t0 + call.at);
      CHECK(std::string(stepActionName(step.action)) == stepActionName(call.action));
      if (call.action == StepAction::kWait) {
        CHECK(step.due == t0 + call.due);
        REQUIRE(r.reloadDue().has_value());
        CHECK(*r.reloadDue() == t0 + call.due);
      }
      if (call.action == StepAction::kReload) {
        CHECK(step.desired == *call.desired);
        CHECK(!r.reloadDue().has_value());
      }
    }
  }
}

TEST_CASE("reconciler: a runtime step carries the differ's commands, in order") {
  Reconciler r = startedAt(kOneApp);
  const Step step = r.next(kTwoReplicas, 1, t0);
  REQUIRE(step.action == StepAction::kRuntime);
  CHECK(step.plan.commands == diff(kOneApp, kTwoReplicas).commands);
  r.runtimeApplied(step.desired, t0);
  CHECK(r.running() == kTwoReplicas);
  CHECK(r.next(kTwoReplicas, 1, t0).action == StepAction::kNone);
}

TEST_CASE("reconciler: a refused table is not retried until a new change arrives") {
  Reconciler r = startedAt(kOneApp);
  REQUIRE(r.next(kSecondApp, 4, t0).action == StepAction::kWait);
  REQUIRE(r.next(kSecondApp, 4, t0 + kWindow).action == StepAction::kReload);
  r.reloadFailed(kSecondApp, 4);
  CHECK(r.running() == kOneApp);  // nothing changed
  // The loop comes back every interval: the same table for the same generation is left alone.
  for (int i = 1; i <= 3; ++i) {
    CHECK(r.next(kSecondApp, 4, t0 + i * std::chrono::seconds(1)).action ==
          StepAction::kSuppressed);
  }
  // Another table is tried (after its window) even in the same generation...
  CHECK(r.next(kThirdApp, 4, t0 + std::chrono::seconds(5)).action == StepAction::kWait);
  CHECK(r.next(kThirdApp, 4, t0 + std::chrono::seconds(5) + kWindow).action == StepAction::kReload);
  // ... and a new change retries the refused table too.
  CHECK(r.next(kSecondApp, 5, t0 + std::chrono::seconds(6)).action == StepAction::kWait);
  CHECK(r.next(kSecondApp, 5, t0 + std::chrono::seconds(6) + kWindow).action ==
        StepAction::kReload);
  r.reloaded(kSecondApp);
  CHECK(r.running() == kSecondApp);
  CHECK(r.next(kSecondApp, 5, t0 + std::chrono::seconds(7)).action == StepAction::kNone);
}

TEST_CASE("reconciler: failed runtime commands reload at once, without the window") {
  Reconciler r = startedAt(kOneApp);
  const Step runtime = r.next(kTwoReplicas, 2, t0);
  REQUIRE(runtime.action == StepAction::kRuntime);
  const Step reload = r.runtimeFailed(runtime, "set server: no such server", 2, t0);
  CHECK(reload.action == StepAction::kReload);
  CHECK(reload.desired == kTwoReplicas);
  CHECK(reload.plan.commands.empty());
  REQUIRE(reload.plan.reload_reasons.size() == 1);
  CHECK(reload.plan.reload_reasons[0] ==
        ReloadReason{"runtime_error", "runtime commands failed: set server: no such server"});
  // That reload failing too: the same table is not retried until a new change.
  r.reloadFailed(kTwoReplicas, 2);
  const Step again = r.next(kTwoReplicas, 2, t0 + std::chrono::seconds(1));
  REQUIRE(again.action == StepAction::kRuntime);  // runtime first: it may work now
  CHECK(r.runtimeFailed(again, "still failing", 2, t0 + std::chrono::seconds(1)).action ==
        StepAction::kSuppressed);
}

TEST_CASE("reconciler: draining slots are timed from when they started, freed by a reload") {
  Reconciler r = startedAt(kTwoReplicas);
  const Clock::time_point drained_at = t0 + std::chrono::seconds(3);
  r.runtimeApplied(kDrainingFirst, drained_at);
  CHECK(r.drainStarted() == std::map<SlotRef, Clock::time_point>{{{"a", 0}, drained_at}});
  // Still draining later: the start time stays.
  r.runtimeApplied(kDrainingFirst, drained_at + std::chrono::seconds(5));
  CHECK(r.drainStarted() == std::map<SlotRef, Clock::time_point>{{{"a", 0}, drained_at}});
  // A reload frees it: the new worker has nothing in flight there.
  r.reloaded(kDrainingFirst);
  CHECK(r.drainStarted().empty());
  CHECK(r.running() == table({backend("a", "/a", {freeSlot(), active("a-2", 30001)})}));
}

TEST_CASE("reconciler: a restart frees draining slots and forgets their timers") {
  Reconciler r = startedAt(kTwoReplicas);
  r.runtimeApplied(kDrainingFirst, t0);
  r.restarted();
  CHECK(r.drainStarted().empty());
  CHECK(r.running() == table({backend("a", "/a", {freeSlot(), active("a-2", 30001)})}));
}

TEST_CASE("reconciler: with nothing to do, drift is checked once per period") {
  Reconciler r = startedAt(kOneApp);
  CHECK(r.next(kOneApp, 1, t0).check_drift);
  CHECK_FALSE(r.next(kOneApp, 1, t0 + milliseconds(999)).check_drift);
  CHECK(r.next(kOneApp, 1, t0 + milliseconds(1000)).check_drift);
  CHECK_FALSE(r.next(kOneApp, 1, t0 + milliseconds(1500)).check_drift);
}

}  // namespace
}  // namespace serve::manager
