#include "haproxy-manager/app/node_ports.h"

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace serve::manager {

namespace {

// A port and where it was set: a config key or an environment variable.
struct Listener {
  const char* name;
  int port;
};

// A replica port range [min, max) and the variables that set it.
struct PortRange {
  const char* what;
  int min;
  int max;
  const char* min_name;
  const char* max_name;
};

std::string describe(const PortRange& range) {
  return absl::StrCat(range.what, " [", range.min, ", ", range.max, ") (", range.min_name, ", ",
                      range.max_name, ")");
}

}  // namespace

Status checkNodePorts(const ServeConfig& config, const ManagerEnv& env,
                      const ReplicaEnv& replica_env) {
  // Config keys first, so that a clash with the config blames the variable, which is the
  // node-local setting an operator is most likely to have just changed.
  std::vector<Listener> listeners = {{"http_options.port", config.http_options.port}};
  if (config.grpc_options.port > 0) {
    listeners.push_back({"grpc_options.port", config.grpc_options.port});
  }
  listeners.push_back({"RAY_SERVE_HAPROXY_METRICS_PORT", env.metrics_port});
  listeners.push_back({"RAY_SERVE_HAPROXY_STATS_PORT", env.stats_port});
  listeners.push_back({"RAY_SERVE_HAPROXY_CONTROL_PORT", env.control_port});

  for (std::size_t later = 1; later < listeners.size(); ++later) {
    for (std::size_t earlier = 0; earlier < later; ++earlier) {
      if (listeners[later].port == listeners[earlier].port) {
        return absl::InvalidArgumentError(
            absl::StrCat(listeners[later].name, "=", listeners[later].port, " collides with ",
                         listeners[earlier].name, " (", listeners[earlier].port, ")"));
      }
    }
  }

  const PortRange ranges[] = {
      {"the replicas' HTTP port range", replica_env.min_http_port, replica_env.max_http_port,
       "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"},
      {"the replicas' gRPC port range", replica_env.min_grpc_port, replica_env.max_grpc_port,
       "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT", "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT"},
  };
  for (const Listener& listener : listeners) {
    for (const PortRange& range : ranges) {
      if (listener.port >= range.min && listener.port < range.max) {
        return absl::InvalidArgumentError(
            absl::StrCat(listener.name, "=", listener.port, " falls inside ", describe(range)));
      }
    }
  }
  if (ranges[0].min < ranges[1].max && ranges[1].min < ranges[0].max) {
    return absl::InvalidArgumentError(
        absl::StrCat(describe(ranges[0]), " overlaps ", describe(ranges[1])));
  }
  return absl::OkStatus();
}

}  // namespace serve::manager
