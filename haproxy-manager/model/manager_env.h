#pragma once

// The manager's RAY_SERVE_* environment, read once at start into a plain struct. Every variable
// here is listed in docs/configuration.md with its default; names follow Ray Serve's where Ray
// has one. Durations are seconds (doubles); "unset" optionals mean "do not emit the directive".
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "common/env_settings.h"
#include "common/status.h"

namespace serve::manager {

struct ManagerEnv {
  // HAProxy process and files.
  std::string haproxy_binary;  // RAY_SERVE_HAPROXY_BINARY_PATH; empty = "haproxy" found on PATH
  std::string socket_path = "/tmp/haproxy-serve/admin.sock";   // RAY_SERVE_HAPROXY_SOCKET_PATH
  std::string config_file = "/tmp/haproxy-serve/haproxy.cfg";  // ..._CONFIG_FILE_LOC
  std::string template_dir;     // RAY_SERVE_HAPROXY_TEMPLATE_DIR; empty = the built-in templates/
  bool metrics_enabled = true;  // RAY_SERVE_HAPROXY_METRICS_ENABLED: per-request metrics
  std::string metrics_socket_path;  // RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH; default:
                                    // metrics.sock beside the admin socket

  // global section.
  int maxconn = 20000;             // RAY_SERVE_HAPROXY_MAXCONN
  int nbthread = 4;                // RAY_SERVE_HAPROXY_NBTHREAD
  double hard_stop_after_s = 120;  // RAY_SERVE_HAPROXY_HARD_STOP_AFTER_S

  // defaults section.
  double timeout_client_s = 3600;              // RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S
  std::optional<double> timeout_server_s;      // RAY_SERVE_HAPROXY_TIMEOUT_SERVER_S
  std::optional<double> timeout_connect_s;     // RAY_SERVE_HAPROXY_TIMEOUT_CONNECT_S
  std::optional<double> keep_alive_timeout_s;  // RAY_SERVE_HTTP_KEEP_ALIVE_TIMEOUT_S (wins
                                               // over http_options.keep_alive_timeout_s)
  std::optional<int> retries;                  // RAY_SERVE_HAPROXY_RETRIES (HAProxy default 3)

  // Backends and health checks.
  std::string balance_algorithm = "leastconn";  // RAY_SERVE_HAPROXY_BALANCE_ALGORITHM:
                                                // leastconn | roundrobin | first | random |
                                                // random(N), N in [1, 100]
  int health_check_fall = 2;                    // RAY_SERVE_HAPROXY_HEALTH_CHECK_FALL
  int health_check_rise = 2;                    // RAY_SERVE_HAPROXY_HEALTH_CHECK_RISE
  double health_check_inter_s = 5;              // RAY_SERVE_HAPROXY_HEALTH_CHECK_INTER
  double health_check_fastinter_s = 0.25;       // RAY_SERVE_HAPROXY_HEALTH_CHECK_FASTINTER
  double health_check_downinter_s = 0.25;       // RAY_SERVE_HAPROXY_HEALTH_CHECK_DOWNINTER
  bool observe_mark_down = true;                // RAY_SERVE_HAPROXY_OBSERVE_MARK_DOWN_ENABLED
  int observe_error_limit = 3;                  // RAY_SERVE_HAPROXY_OBSERVE_ERROR_LIMIT
  int min_server_slots = 16;                    // RAY_SERVE_HAPROXY_MIN_SERVER_SLOTS

  // Listeners HAProxy owns besides http_options.port.
  int metrics_port = 9101;  // RAY_SERVE_HAPROXY_METRICS_PORT
  int stats_port = 8404;    // RAY_SERVE_HAPROXY_STATS_PORT
  // The stats page shows every server's address, state and counters: loopback only unless the
  // operator binds it elsewhere (RAY_SERVE_HAPROXY_STATS_BIND), which then needs credentials
  // (RAY_SERVE_HAPROXY_STATS_AUTH, "user:password", HTTP basic auth).
  std::string stats_bind = "127.0.0.1";
  std::string stats_auth;   // empty: no authentication (loopback binds only)
  int control_port = 8405;  // RAY_SERVE_HAPROXY_CONTROL_PORT: the manager's control API and
                            // metrics, on 127.0.0.1 only

  // Manager behaviour.
  double control_loop_interval_s = 0.1;  // RAY_SERVE_CONTROL_LOOP_INTERVAL_S
  double broadcast_coalesce_s = 0.1;     // RAY_SERVE_HAPROXY_BROADCAST_COALESCE_S
  double startup_timeout_s = 30;         // RAY_SERVE_HAPROXY_STARTUP_TIMEOUT_S: wait for a new
                                         // worker to take over after start or reload
  double node_draining_period_s = 30;    // RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S
  std::string log_dir = "logs/serve";    // RAY_SERVE_LOG_DIR (HAProxy's stdout/stderr go here)
  bool log_to_stderr = true;             // RAY_SERVE_LOG_TO_STDERR; as in the replica, defaults
                                         // to false when RAY_SERVE_THROUGHPUT_OPTIMIZED=1
};

// The admin socket's name is free; the master CLI socket is this file in the same directory.
inline constexpr char kMasterSocketName[] = "master.sock";

// sizeof(sockaddr_un::sun_path) less the terminating NUL; both sockets must fit.
inline constexpr std::size_t kMaxSocketPathBytes = 107;

// The master CLI socket for an admin socket path: kMasterSocketName beside it.
std::string masterSocketPath(const std::string& socket_path);

// Reads and validates the variables above. Errors name the variable, the value and the rule,
// e.g. "RAY_SERVE_HAPROXY_NBTHREAD=0: expected an integer in [1, 256]".
StatusOr<ManagerEnv> readManagerEnv(const EnvLookup& env);

// The plain integer and seconds variables with the ranges readManagerEnv accepts, so that a test
// can check them against docs/configuration.md.
struct EnvRange {
  std::string name;
  double min = 0;
  double max = 0;
};
std::vector<EnvRange> plainEnvRanges();

}  // namespace serve::manager
