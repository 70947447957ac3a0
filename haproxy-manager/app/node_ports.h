#pragma once

// One node's ports, checked together at start: the YAML config, the manager's environment and
// the replicas' environment each validate their own values, but only together can they tell
// that two listeners would fight over a port, or that a replica could be handed HAProxy's.
#include "common/env_settings.h"
#include "common/serve_config.h"
#include "common/status.h"
#include "haproxy-manager/model/manager_env.h"

namespace serve::manager {

// HAProxy's listeners (http_options.port, grpc_options.port when > 0, metrics_port, stats_port)
// and the manager's control_port must all differ, none may fall inside the replicas' HTTP or
// gRPC port range [min, max), and those two ranges must not overlap. Errors name the variable
// or config key and both values, e.g.
// "RAY_SERVE_HAPROXY_STATS_PORT=8000 collides with http_options.port (8000)".
Status checkNodePorts(const ServeConfig& config, const ManagerEnv& env,
                      const ReplicaEnv& replica_env);

}  // namespace serve::manager
