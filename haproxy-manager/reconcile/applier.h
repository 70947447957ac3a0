#pragma once

// What the control loop sends to and reads from a running HAProxy, over the runtime API only
// (an injected RuntimeApi: the admin socket in production, a fake with captured `show` output in
// the unit tests): runtime plans with their command counters, drift repair, the sampling of
// draining slots, and the quiescing of the frontends before a node stops.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "haproxy-manager/haproxy/runtime_api.h"
#include "haproxy-manager/metrics/manager_metrics.h"
#include "haproxy-manager/model/desired_state.h"
#include "haproxy-manager/model/routing_table.h"

namespace serve::manager {

// Sends `commands` (applyCommands: batched, every reply checked) and counts them by kind and
// result in serve_haproxy_runtime_commands_total.
Status applyRuntimePlan(RuntimeApi& api, const std::vector<std::string>& commands,
                        ManagerMetrics& metrics);

// What HAProxy runs, read back (`show servers state` and `show map` of the table's map files)
// and compared with `running`; what differs is set back with runtime commands. Returns the
// number of slots and map entries repaired (0 when none differed or HAProxy did not answer).
int repairDrift(RuntimeApi& api, const RoutingTable& running, ManagerMetrics& metrics);

// The slots in `drain_started` that started draining before `sampled_at` and that HAProxy now
// shows with no request in progress or queued on either protocol (`show stat`): they may be
// freed. Empty when HAProxy does not answer.
std::set<SlotRef> idleDrainingSlots(RuntimeApi& api, const RoutingTable& running,
                                    const std::map<SlotRef, Clock::time_point>& drain_started,
                                    Clock::time_point sampled_at);

// A node stop's first step: disables the HTTP (and gRPC) frontends, then waits up to `grace`
// (checking every 50 ms of real time) until no application backend has a request in progress
// or queued. Returns what was still busy when it stopped waiting (0 also when HAProxy does not
// answer: nothing to wait for).
int64_t quiesceFrontends(RuntimeApi& api, bool grpc, std::chrono::milliseconds grace);

}  // namespace serve::manager
