#include "haproxy-manager/reconcile/observed_state.h"

#include "haproxy-manager/render/renderer.h"

namespace serve::manager {

namespace {

using ServerIndex = std::map<std::pair<std::string, std::string>, const ObservedServer*>;

// The key mapped to `backend` in a map, or "" when HAProxy has none (or several: ambiguous).
std::string keyFor(const ObservedMaps& maps, const std::string& file, const std::string& backend,
                   bool* reported) {
  auto it = maps.find(file);
  if (it == maps.end()) {
    *reported = false;
    return "";
  }
  *reported = true;
  std::string found;
  int count = 0;
  for (const auto& [key, value] : it->second) {
    if (value == backend) {
      found = key;
      ++count;
    }
  }
  return count == 1 ? found : "";
}

// The gRPC server of an in-service slot: its port becomes the slot's gRPC port, or 0 (a free
// gRPC slot) when it is out of service or does not point at the replica's host. It tracks the
// HTTP server, so a drain it did not inherit from that server was set by hand.
void observeGrpcSlot(const ServerIndex& by_name, const std::string& grpc_backend, std::size_t i,
                     Slot* slot) {
  auto it = by_name.find({grpc_backend, slotName(i)});
  if (it == by_name.end()) {
    return;
  }
  const ObservedServer& server = *it->second;
  const bool stray_drain = server.draining && slot->state == SlotState::kActive;
  const bool in_service = !server.maintenance && !stray_drain && server.addr == slot->endpoint.host;
  slot->endpoint.grpc_port = in_service ? server.port : 0;
}

}  // namespace

RoutingTable observedTable(const RoutingTable& running, const std::vector<ObservedServer>& servers,
                           const ObservedMaps& maps) {
  RoutingTable observed = running;
  ServerIndex by_name;
  for (const ObservedServer& server : servers) {
    by_name[{server.backend, server.server}] = &server;
  }
  const GlobalSettings& g = running.global;
  for (Backend& backend : observed.backends) {
    const std::string name = backendName(backend);
    for (std::size_t i = 0; i < backend.slots.size(); ++i) {
      auto it = by_name.find({name, slotName(i)});
      if (it == by_name.end()) {
        continue;
      }
      const ObservedServer& server = *it->second;
      Slot& slot = backend.slots[i];
      const Slot expected = slot;
      if (server.maintenance) {
        slot = Slot{};
        continue;
      }
      slot.state = server.draining ? SlotState::kDraining : SlotState::kActive;
      slot.endpoint.host = server.addr;
      slot.endpoint.port = server.port;
      if (expected.state == SlotState::kFree || expected.endpoint.host != server.addr ||
          expected.endpoint.port != server.port) {
        slot.replica_id = "";  // not the replica the manager put there
        slot.endpoint.grpc_port = 0;
      }
      if (g.grpc_port > 0) {
        observeGrpcSlot(by_name, grpcBackendName(backend), i, &slot);
      }
    }
    bool reported = false;
    const std::string exact = keyFor(maps, statePath(g, kRoutesExactMap), name, &reported);
    if (reported) {
      backend.route_prefix = exact;
    }
    const std::string model = keyFor(maps, statePath(g, kModelsMap), name, &reported);
    if (reported) {
      backend.model_name = model;
    }
    // A route with no rewrite entry is passed through to the replicas unchanged.
    if (auto it = maps.find(statePath(g, kRoutesRewriteMap)); it != maps.end()) {
      backend.passthrough = true;
      for (const auto& entry : it->second) {
        if (entry.first == backend.route_prefix) {
          backend.passthrough = false;
        }
      }
    }
  }
  if (auto it = maps.find(statePath(g, kNodeMap)); it != maps.end()) {
    for (const auto& [key, value] : it->second) {
      if (key == "draining") {
        observed.draining = value == "1";
      }
    }
  }
  return observed;
}

}  // namespace serve::manager
