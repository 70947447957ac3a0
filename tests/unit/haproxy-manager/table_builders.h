#pragma once

// Small builders for routing tables in the manager's unit tests.
#include <string>
#include <vector>

#include "haproxy-manager/model/routing_table.h"

namespace serve::manager::testing {

inline GlobalSettings testGlobal() {
  GlobalSettings g;
  g.admin_socket = "/run/serve/admin.sock";
  g.state_dir = "/run/serve";
  g.timeout_server_s = 31;
  g.timeout_queue_s = 30;
  g.timeout_connect_s = 5;
  g.grpc_port = 0;  // HTTP only; the gRPC tests turn it on
  return g;
}

inline Slot active(const std::string& id, int port, const std::string& host = "127.0.0.1") {
  return Slot{SlotState::kActive, id, Endpoint{host, port}};
}

inline Slot draining(const std::string& id, int port, const std::string& host = "127.0.0.1") {
  return Slot{SlotState::kDraining, id, Endpoint{host, port}};
}

inline Slot freeSlot() { return Slot{}; }

// `slot` with the replica's gRPC port set.
inline Slot withGrpc(Slot slot, int grpc_port) {
  slot.endpoint.grpc_port = grpc_port;
  return slot;
}

// A backend with `capacity` slots; `used` fills the first slots in order.
inline Backend backend(const std::string& app, const std::string& prefix,
                       std::vector<Slot> used = {}, std::size_t capacity = 16) {
  Backend b;
  b.application = app;
  b.route_prefix = prefix;
  b.model_name = app;
  b.max_ongoing_requests = 5;
  b.slots = std::move(used);
  b.slots.resize(capacity);
  return b;
}

inline RoutingTable table(std::vector<Backend> backends, bool draining = false) {
  RoutingTable t;
  t.global = testGlobal();
  t.backends = std::move(backends);
  t.draining = draining;
  return t;
}

}  // namespace serve::manager::testing
