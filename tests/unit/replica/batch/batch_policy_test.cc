#include "replica/batch/batch_policy.h"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

namespace serve {
namespace {

using std::chrono::milliseconds;
using Action = BatchDecision::Action;
using TimePoint = BatchQueueView::TimePoint;

// A fixed origin keeps every expected wait_until exact.
const TimePoint kT0 = TimePoint{} + std::chrono::hours(1);

const char* actionName(Action a) {
  switch (a) {
    case Action::kIdle:
      return "idle";
    case Action::kRun:
      return "run";
    case Action::kWaitUntil:
      return "wait_until";
  }
  return "?";
}

TEST_CASE("decideBatch: run, wait or idle from the queue snapshot") {
  struct Case {
    std::string name;
    size_t max_batch_size;
    milliseconds timeout;
    size_t queued;
    milliseconds oldest_age;  // now - oldest
    size_t incoming;
    Action action;
    size_t count;                   // kRun only
    milliseconds wait_from_oldest;  // kWaitUntil only: wait_until - oldest
  };
  const std::vector<Case> cases = {
      {"empty queue is idle", 4, milliseconds(50), 0, milliseconds(0), 3, Action::kIdle, 0, {}},
      {"empty queue is idle even with nothing incoming",
       4,
       milliseconds(50),
       0,
       milliseconds(0),
       0,
       Action::kIdle,
       0,
       {}},
      {"full batch runs at once", 4, milliseconds(50), 4, milliseconds(0), 5, Action::kRun, 4, {}},
      {"more than a batch queued takes max",
       4,
       milliseconds(50),
       9,
       milliseconds(0),
       5,
       Action::kRun,
       4,
       {}},
      {"oldest waited exactly the timeout: run all",
       4,
       milliseconds(50),
       3,
       milliseconds(50),
       5,
       Action::kRun,
       3,
       {}},
      {"oldest waited past the timeout: run all",
       4,
       milliseconds(50),
       2,
       milliseconds(80),
       5,
       Action::kRun,
       2,
       {}},
      {"nothing incoming: a lone request runs at once",
       4,
       milliseconds(50),
       1,
       milliseconds(0),
       0,
       Action::kRun,
       1,
       {}},
      {"nothing incoming: a partial batch runs at once",
       8,
       milliseconds(50),
       3,
       milliseconds(1),
       0,
       Action::kRun,
       3,
       {}},
      {"incoming and inside the window: wait for oldest + timeout", 4, milliseconds(50), 1,
       milliseconds(0), 1, Action::kWaitUntil, 0, milliseconds(50)},
      {"incoming, part of the window spent: the deadline stays oldest + timeout", 4,
       milliseconds(50), 2, milliseconds(49), 7, Action::kWaitUntil, 0, milliseconds(50)},
      {"max_batch_size 0 is treated as 1",
       0,
       milliseconds(50),
       1,
       milliseconds(0),
       5,
       Action::kRun,
       1,
       {}},
      {"max_batch_size 0 with a queue takes one",
       0,
       milliseconds(50),
       6,
       milliseconds(0),
       5,
       Action::kRun,
       1,
       {}},
      {"zero timeout never waits", 4, milliseconds(0), 1, milliseconds(0), 5, Action::kRun, 1, {}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    BatchConfig config;
    config.max_batch_size = c.max_batch_size;
    config.batch_wait_timeout = c.timeout;
    BatchQueueView view;
    view.queued = c.queued;
    view.oldest = kT0;
    view.now = kT0 + c.oldest_age;
    view.incoming = c.incoming;

    const BatchDecision d = decideBatch(config, view);
    CHECK(std::string(actionName(d.action)) == actionName(c.action));
    if (c.action == Action::kRun) {
      CHECK(d.count == c.count);
    } else {
      CHECK(d.count == 0);
    }
    if (c.action == Action::kWaitUntil) {
      CHECK(d.wait_until == kT0 + c.wait_from_oldest);
    }
  }
}

TEST_CASE("decideBatch: an idle model lingers for the callers the last pass answered") {
  // The last pass ran 8 ms, answered 4 calls and left 2 queued; lingering may last 25% of it
  // (2 ms) after it ended, capped by the 50 ms batch wait. Every case has calls incoming = 0
  // and an oldest call far past its batch wait, so without the rule each would run at once.
  struct Case {
    std::string name;
    double fraction;
    bool allowed;
    size_t answered;
    size_t queued;
    milliseconds since_pass;  // now - last.ended
    milliseconds timeout;
    Action action;
    size_t count;           // kRun: how many
    milliseconds wait_for;  // kWaitUntil: wait_until - last.ended
    size_t target;          // kWaitUntil: linger_target
  };
  const std::vector<Case> cases = {
      {"waits for queued-at-end + answered", 0.25, true, 4, 2, milliseconds(0), milliseconds(50),
       Action::kWaitUntil, 0, milliseconds(2), 6},
      {"a call that came back does not end it early", 0.25, true, 4, 5, milliseconds(1),
       milliseconds(50), Action::kWaitUntil, 0, milliseconds(2), 6},
      {"target reached: runs",
       0.25,
       true,
       4,
       6,
       milliseconds(1),
       milliseconds(50),
       Action::kRun,
       6,
       {},
       0},
      {"window over: runs what came",
       0.25,
       true,
       4,
       3,
       milliseconds(2),
       milliseconds(50),
       Action::kRun,
       3,
       {},
       0},
      {"the target never exceeds max_batch_size (8)", 0.25, true, 7, 7, milliseconds(0),
       milliseconds(50), Action::kWaitUntil, 0, milliseconds(2), 8},
      {"capped by batch_wait_timeout", 0.25, true, 4, 2, milliseconds(0), milliseconds(1),
       Action::kWaitUntil, 0, milliseconds(1), 6},
      {"batch_wait_timeout 0: never lingers",
       0.25,
       true,
       4,
       2,
       milliseconds(0),
       milliseconds(0),
       Action::kRun,
       2,
       {},
       0},
      {"fraction 0: off", 0, true, 4, 2, milliseconds(0), milliseconds(50), Action::kRun, 2, {}, 0},
      {"a window under min_linger_window (160 us) is skipped",
       0.02,
       true,
       4,
       2,
       milliseconds(0),
       milliseconds(50),
       Action::kRun,
       2,
       {},
       0},
      {"backed off: off",
       0.25,
       false,
       4,
       2,
       milliseconds(0),
       milliseconds(50),
       Action::kRun,
       2,
       {},
       0},
      {"no pass yet: off",
       0.25,
       true,
       0,
       2,
       milliseconds(0),
       milliseconds(50),
       Action::kRun,
       2,
       {},
       0},
      {"a lone caller (answered 1, nothing queued) does not wait",
       0.25,
       true,
       1,
       1,
       milliseconds(0),
       milliseconds(50),
       Action::kRun,
       1,
       {},
       0},
      {"a long-idle model does not wait",
       0.25,
       true,
       4,
       1,
       milliseconds(500),
       milliseconds(50),
       Action::kRun,
       1,
       {},
       0},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    BatchConfig config;
    config.max_batch_size = 8;
    config.batch_wait_timeout = c.timeout;
    config.linger_fraction = c.fraction;
    BatchQueueView view;
    view.last.ended = kT0;
    view.last.duration = milliseconds(8);
    view.last.answered = c.answered;
    view.last.queued_at_end = c.answered == 1 ? 0 : 2;
    view.linger_allowed = c.allowed;
    view.queued = c.queued;
    view.oldest = kT0 - milliseconds(100);
    view.now = kT0 + c.since_pass;
    view.incoming = 0;

    const BatchDecision d = decideBatch(config, view);
    CHECK(std::string(actionName(d.action)) == actionName(c.action));
    if (c.action == Action::kRun) {
      CHECK(d.count == c.count);
      CHECK(d.linger_target == 0);
    } else {
      CHECK(d.wait_until == kT0 + c.wait_for);
      CHECK(d.linger_target == c.target);
    }
  }
}

}  // namespace
}  // namespace serve
