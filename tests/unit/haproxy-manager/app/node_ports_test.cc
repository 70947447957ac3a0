#include "haproxy-manager/app/node_ports.h"

#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

namespace serve::manager {
namespace {

struct Ports {
  ServeConfig config;
  ManagerEnv env;
  ReplicaEnv replica_env;
};

struct Case {
  std::string name;
  std::function<void(Ports&)> change;
  std::string message;  // empty: accepted
};

TEST_CASE("checkNodePorts accepts the defaults") {
  const Ports defaults;
  CHECK(checkNodePorts(defaults.config, defaults.env, defaults.replica_env).ok());
}

TEST_CASE("checkNodePorts keeps every listener apart and out of the replica ranges") {
  const std::vector<Case> cases = {
      {"listeners just outside both ranges",
       [](Ports& p) {
         p.config.http_options.port = 29999;
         p.config.grpc_options.port = 31000;
         p.env.metrics_port = 39999;
         p.env.stats_port = 41000;
       },
       ""},
      {"no gRPC listener when its port is 0",
       [](Ports& p) {
         p.config.grpc_options.port = 0;
         p.env.metrics_port = 9000;
       },
       ""},
      {"adjacent replica ranges do not overlap",
       [](Ports& p) {
         p.replica_env.min_grpc_port = 31000;
         p.replica_env.max_grpc_port = 32000;
       },
       ""},
      {"stats port on the HTTP port", [](Ports& p) { p.env.stats_port = 8000; },
       "RAY_SERVE_HAPROXY_STATS_PORT=8000 collides with http_options.port (8000)"},
      {"metrics port on the gRPC port", [](Ports& p) { p.env.metrics_port = 9000; },
       "RAY_SERVE_HAPROXY_METRICS_PORT=9000 collides with grpc_options.port (9000)"},
      {"control port on the metrics port", [](Ports& p) { p.env.control_port = 9101; },
       "RAY_SERVE_HAPROXY_CONTROL_PORT=9101 collides with RAY_SERVE_HAPROXY_METRICS_PORT (9101)"},
      {"control port on the stats port", [](Ports& p) { p.env.control_port = 8404; },
       "RAY_SERVE_HAPROXY_CONTROL_PORT=8404 collides with RAY_SERVE_HAPROXY_STATS_PORT (8404)"},
      {"HTTP port on the control port", [](Ports& p) { p.config.http_options.port = 8405; },
       "RAY_SERVE_HAPROXY_CONTROL_PORT=8405 collides with http_options.port (8405)"},
      {"gRPC port on the HTTP port", [](Ports& p) { p.config.grpc_options.port = 8000; },
       "grpc_options.port=8000 collides with http_options.port (8000)"},
      {"HTTP port inside the replica HTTP range",
       [](Ports& p) { p.config.http_options.port = 30000; },
       "http_options.port=30000 falls inside the replicas' HTTP port range [30000, 31000) "
       "(RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT, RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT)"},
      {"gRPC port inside the replica gRPC range",
       [](Ports& p) { p.config.grpc_options.port = 40999; },
       "grpc_options.port=40999 falls inside the replicas' gRPC port range [40000, 41000) "
       "(RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT, RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT)"},
      {"replica HTTP range moved over the stats port",
       [](Ports& p) {
         p.replica_env.min_http_port = 8001;
         p.replica_env.max_http_port = 9000;
       },
       "RAY_SERVE_HAPROXY_STATS_PORT=8404 falls inside the replicas' HTTP port range [8001, 9000) "
       "(RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT, RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT)"},
      {"metrics port inside the replica gRPC range", [](Ports& p) { p.env.metrics_port = 40500; },
       "RAY_SERVE_HAPROXY_METRICS_PORT=40500 falls inside the replicas' gRPC port range [40000, "
       "41000) (RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT, RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT)"},
      {"control port inside the replica HTTP range", [](Ports& p) { p.env.control_port = 30999; },
       "RAY_SERVE_HAPROXY_CONTROL_PORT=30999 falls inside the replicas' HTTP port range [30000, "
       "31000) (RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT, RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT)"},
      {"replica ranges overlap",
       [](Ports& p) {
         p.replica_env.min_grpc_port = 30999;
         p.replica_env.max_grpc_port = 32000;
       },
       "the replicas' HTTP port range [30000, 31000) (RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT, "
       "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT) overlaps the replicas' gRPC port range [30999, "
       "32000) (RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT, RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT)"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    Ports ports;
    c.change(ports);
    const Status status = checkNodePorts(ports.config, ports.env, ports.replica_env);
    if (c.message.empty()) {
      CHECK_MESSAGE(status.ok(), status.message());
    } else {
      REQUIRE_FALSE(status.ok());
      CHECK(status.code() == absl::StatusCode::kInvalidArgument);
      CHECK(std::string(status.message()) == c.message);
    }
  }
}

}  // namespace
}  // namespace serve::manager
