#pragma once

// The reload-only settings of the routing table, from the environment and the serve config.
#include "common/serve_config.h"
#include "haproxy-manager/model/manager_env.h"
#include "haproxy-manager/model/routing_table.h"

namespace serve::manager {

// http_options.request_timeout_s bounds a request end to end: the replica answers 408 itself at
// that deadline, and HAProxy's `timeout server` (the deadline plus this grace, unless
// RAY_SERVE_HAPROXY_TIMEOUT_SERVER_S says otherwise) answers 408 for a replica that hangs.
// `timeout queue` uses the deadline itself: a request still waiting for a free replica then
// gets HAProxy's 503.
inline constexpr double kServerTimeoutGraceS = 1.0;
// Without http_options.request_timeout_s (0: no deadline of the request's own) HAProxy's
// `timeout server` and `timeout queue` are the client timeout (RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S,
// an hour by default): every HAProxy timeout is finite, so a stuck replica cannot hold a client
// forever. `timeout connect` is this unless RAY_SERVE_HAPROXY_TIMEOUT_CONNECT_S says otherwise.
inline constexpr double kDefaultConnectTimeoutS = 5.0;

GlobalSettings globalSettings(const ManagerEnv& env, const ServeConfig& config);

}  // namespace serve::manager
