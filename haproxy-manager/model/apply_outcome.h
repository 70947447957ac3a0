#pragma once

// What applying one change to HAProxy led to: the answer to a registration, a deploy or a drain.
// A plain value in the model layer, so that code which only asks for changes (the replica
// supervisor, the control API) need not see the reconciler that makes them.
#include <string>
#include <vector>

namespace serve::manager {

struct ApplyOutcome {
  std::string action;                 // "none" | "runtime" | "reload"
  std::vector<std::string> reasons;   // reload reasons, when action == "reload"
  std::vector<std::string> commands;  // runtime commands sent, when action == "runtime"
  double latency_ms = 0;              // change recorded -> HAProxy applied
};

}  // namespace serve::manager
