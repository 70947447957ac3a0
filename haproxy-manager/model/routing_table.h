#pragma once

// The routing table: everything HAProxy must know, as plain values. The manager builds the
// desired table (model/desired_state), the renderer turns a table into haproxy.cfg and map files
// (render/), and the differ turns (running, desired) into runtime-API commands or a reload
// (diff/). Vectors are kept in a canonical order (backends by application name, slots by index)
// so that equal tables compare equal and render to the same bytes.
#include <compare>
#include <optional>
#include <string>
#include <vector>

namespace serve::manager {

// Settings that only a reload can change: they render into global/defaults/frontends.
struct GlobalSettings {
  // Files. The map files, error pages and server-state file live in `state_dir`.
  std::string admin_socket;  // stats socket (runtime API)
  std::string state_dir;     // directory of haproxy.cfg
  // Unix datagram socket the `http` frontend sends one log line per request to, for the ingress
  // request metrics (haproxy-manager/ingress/); empty: no request logging at all.
  std::string ingress_log_socket;

  // global
  int maxconn = 20000;
  int nbthread = 4;
  double hard_stop_after_s = 120;

  // defaults
  double timeout_client_s = 3600;
  std::optional<double> timeout_server_s;  // also bounds a request: expiry answers 408
  std::optional<double> timeout_connect_s;
  std::optional<double> timeout_queue_s;
  double keep_alive_timeout_s = 90;
  std::optional<int> retries;

  // backends
  std::string balance_algorithm = "leastconn";
  int health_check_fall = 2;
  int health_check_rise = 2;
  double health_check_inter_s = 5;
  double health_check_fastinter_s = 0.25;
  double health_check_downinter_s = 0.25;
  bool observe_mark_down = true;
  int observe_error_limit = 3;

  // listeners
  std::string http_host = "0.0.0.0";
  int http_port = 8000;
  int grpc_port = 9000;  // h2c gRPC frontend (grpc_options.port); 0: no gRPC listener or backends
  int metrics_port = 9101;
  int stats_port = 8404;
  std::string stats_bind = "127.0.0.1";  // an IP literal
  std::string stats_auth;                // "user:password", checked; empty: none
  int control_port = 8405;               // where HAProxy forwards /metrics/manager

  friend bool operator==(const GlobalSettings&, const GlobalSettings&) = default;
};

// One replica's endpoints as HAProxy dials them: HTTP at host:port, gRPC at host:grpc_port.
struct Endpoint {
  std::string host;
  int port = 0;
  int grpc_port = 0;  // 0: the replica serves no gRPC; its gRPC slot stays in maintenance

  friend auto operator<=>(const Endpoint&, const Endpoint&) = default;
};

enum class SlotState {
  kFree,      // placeholder, in maintenance; no replica
  kActive,    // serving `replica_id` at `endpoint`
  kDraining,  // replica leaving: no new requests; freed once HAProxy shows it idle
};

struct Slot {
  SlotState state = SlotState::kFree;
  std::string replica_id;  // empty when free
  Endpoint endpoint;       // meaningless when free

  friend bool operator==(const Slot&, const Slot&) = default;
};

// One application: its HTTP backend, its gRPC backend (when the node has a gRPC listener) and
// how requests find them. Both backends have the same slots: slot i of "grpc-<app>" is the gRPC
// port of the replica in slot i of "http-<app>", and tracks that server's health.
struct Backend {
  std::string application;       // checked by validateName()
  std::string route_prefix;      // checked by validateRoutePrefix()
  std::string model_name;        // KServe v2 name: /v2/models/<model_name>/... routes here
  int max_ongoing_requests = 5;  // per-server maxconn
  // The ingress deployment's max_queued_requests: requests HAProxy lets wait for a free replica
  // (per protocol) before it answers 503 itself; -1 = unbounded. Changing it reloads.
  int max_queued_requests = -1;
  // The replicas answer HTTP at the route themselves (kind python): requests keep their path.
  // Otherwise the route prefix is rewritten to /v2/models/<model_name>/infer.
  bool passthrough = false;
  std::vector<Slot> slots;  // slot i is HAProxy server "slot<i+1>"; size() = capacity

  friend bool operator==(const Backend&, const Backend&) = default;
};

struct RoutingTable {
  GlobalSettings global;
  std::vector<Backend> backends;  // sorted by application name
  bool draining = false;          // node drain: /-/healthz answers 503

  friend bool operator==(const RoutingTable&, const RoutingTable&) = default;

  const Backend* findBackend(const std::string& application) const;
};

// HAProxy names, spelled in one place.
inline constexpr char kBackendNamePrefix[] = "http-";
inline constexpr char kGrpcBackendNamePrefix[] = "grpc-";
std::string backendName(const Backend& backend);      // "http-<application>"
std::string grpcBackendName(const Backend& backend);  // "grpc-<application>"
std::string slotName(std::size_t index);              // "slot<index+1>"

// The /-/routes body: {"<prefix>":"<application>",...}, prefixes in sorted order.
std::string routesJson(const RoutingTable& table);

// Slot i of the gRPC backend, seen as a slot of its own: the replica's gRPC port as the endpoint
// port, and free when the slot is free or the replica serves no gRPC.
Slot grpcSlot(const Slot& slot);

}  // namespace serve::manager
