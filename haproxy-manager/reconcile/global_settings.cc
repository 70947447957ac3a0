#include "haproxy-manager/reconcile/global_settings.h"

#include <filesystem>

namespace serve::manager {

GlobalSettings globalSettings(const ManagerEnv& env, const ServeConfig& config) {
  GlobalSettings g;
  g.admin_socket = env.socket_path;
  g.state_dir = std::filesystem::path(env.config_file).parent_path().string();
  if (g.state_dir.empty()) {
    g.state_dir = ".";
  }
  g.maxconn = env.maxconn;
  g.nbthread = env.nbthread;
  g.hard_stop_after_s = env.hard_stop_after_s;
  g.timeout_client_s = env.timeout_client_s;
  g.timeout_connect_s = env.timeout_connect_s.value_or(kDefaultConnectTimeoutS);
  const double request_timeout = config.http_options.request_timeout_s;
  if (env.timeout_server_s.has_value()) {
    g.timeout_server_s = env.timeout_server_s;
  } else if (request_timeout > 0) {
    g.timeout_server_s = request_timeout + kServerTimeoutGraceS;
  } else {
    g.timeout_server_s = env.timeout_client_s;
  }
  g.timeout_queue_s = request_timeout > 0 ? request_timeout : env.timeout_client_s;
  g.keep_alive_timeout_s =
      env.keep_alive_timeout_s.value_or(config.http_options.keep_alive_timeout_s);
  g.retries = env.retries;
  g.balance_algorithm = env.balance_algorithm;
  g.health_check_fall = env.health_check_fall;
  g.health_check_rise = env.health_check_rise;
  g.health_check_inter_s = env.health_check_inter_s;
  g.health_check_fastinter_s = env.health_check_fastinter_s;
  g.health_check_downinter_s = env.health_check_downinter_s;
  g.observe_mark_down = env.observe_mark_down;
  g.observe_error_limit = env.observe_error_limit;
  g.http_host = config.http_options.host;
  g.http_port = config.http_options.port;
  g.grpc_port = config.grpc_options.port;
  g.metrics_port = env.metrics_port;
  g.stats_port = env.stats_port;
  g.stats_bind = env.stats_bind;
  g.stats_auth = env.stats_auth;
  g.control_port = env.control_port;
  if (env.metrics_enabled) {
    g.ingress_log_socket = env.metrics_socket_path;
  }
  return g;
}

}  // namespace serve::manager
