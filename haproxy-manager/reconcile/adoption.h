#pragma once

// Taking over from a manager that died: the state file it left beside haproxy.cfg (its HAProxy
// master and its replica registrations), and the routing table rebuilt from what that HAProxy
// runs. Pure functions; the manager reads the file and asks HAProxy, these decide.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "haproxy-manager/haproxy/show_parsers.h"
#include "haproxy-manager/model/desired_state.h"
#include "haproxy-manager/model/routing_table.h"
#include "nlohmann/json.hpp"

namespace serve::manager {

// Beside haproxy.cfg: what the next manager needs to adopt this one's HAProxy and replicas.
inline constexpr char kManagerStateFile[] = "manager-state.json";

struct ManagerState {
  int haproxy_master_pid = 0;
  std::vector<ReplicaRegistration> replicas;

  friend bool operator==(const ManagerState&, const ManagerState&) = default;
};

// Beside it: which config is in force on the node (the one it was started with, or the last
// deploy it took), so that a successor adopting the node goes on with that config rather than
// rolling the node back to whatever file it was itself started with.
inline constexpr char kInForceFile[] = "config-in-force.json";

struct InForceRecord {
  std::string snapshot;  // the config's snapshot, config-<hash>.yaml in the state directory
  std::string base_dir;  // where that config's relative paths (model files) resolve

  friend bool operator==(const InForceRecord&, const InForceRecord&) = default;
};

// {"snapshot": "...", "base_dir": "..."}
std::string inForceJson(const InForceRecord& record);

// Anything else (not JSON, a field missing, not a string, an empty or relative snapshot path) is
// InvalidArgument naming `source` and the problem.
StatusOr<InForceRecord> parseInForce(const std::string& text, const std::string& source);

// One registration as the state file and `haproxy-manager status` show it.
nlohmann::json registrationJson(const ReplicaRegistration& r);

// The file's text: {"haproxy_master_pid": N, "replicas": [{replica_id, application, ...}]}.
std::string managerStateJson(const ManagerState& state);

// Parses the file's text. Anything that is not exactly that shape (truncated, not JSON, a
// field of the wrong type or range, a replica without an id) is InvalidArgument naming `source`
// and the problem: a damaged file is reported and not adopted, and never throws.
StatusOr<ManagerState> parseManagerState(const std::string& text, const std::string& source);

// The registrations whose process still runs (`alive(pid)`; a pid of 0 is not ours to watch).
std::vector<ReplicaRegistration> liveRegistrations(const std::vector<ReplicaRegistration>& all,
                                                   const std::function<bool(int)>& alive);

// The table an adopted HAProxy runs: `base` (the config's backends, as a fresh start would
// build them) with each backend's capacity taken from the slots HAProxy lists, the slots'
// states and endpoints from `servers`, and each occupied slot named after the registration
// whose HTTP endpoint it points at.
RoutingTable adoptedTable(RoutingTable base, const std::vector<ServerStateRow>& servers,
                          const std::vector<ReplicaRegistration>& replicas);

// Whether a slot of `table`, active or draining, holds `replica`: one named after it, or one
// pointing at its HTTP endpoint. The second is how an adopted table shows a replica the earlier
// manager put into HAProxy and died before registering; until that slot drains and is freed,
// HAProxy may send the replica requests, so it must not be stopped.
bool tableHolds(const RoutingTable& table, const ReplicaRegistration& replica);

}  // namespace serve::manager
