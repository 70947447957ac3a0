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

}  // namespace
}  // namespace serve
