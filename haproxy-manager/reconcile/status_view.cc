#include "haproxy-manager/reconcile/status_view.h"

#include "haproxy-manager/reconcile/adoption.h"
#include "haproxy-manager/render/renderer.h"

namespace serve::manager {

const char* slotStateName(SlotState state) {
  switch (state) {
    case SlotState::kFree:
      return "free";
    case SlotState::kActive:
      return "active";
    case SlotState::kDraining:
      return "draining";
  }
  return "unknown";
}

nlohmann::json applicationsJson(const RoutingTable& table) {
  nlohmann::json apps = nlohmann::json::array();
  const bool grpc = table.global.grpc_port > 0;
  for (const Backend& backend : table.backends) {
    nlohmann::json slots = nlohmann::json::array();
    for (std::size_t i = 0; i < backend.slots.size(); ++i) {
      const Slot& slot = backend.slots[i];
      if (slot.state == SlotState::kFree) {
        continue;
      }
      nlohmann::json entry = {{"slot", slotName(i)},
                              {"state", slotStateName(slot.state)},
                              {"replica_id", slot.replica_id},
                              {"address", serverAddress(slot)}};
      if (grpc) {
        const Slot view = grpcSlot(slot);
        entry["grpc_address"] = view.state == SlotState::kFree ? "" : serverAddress(view);
      }
      slots.push_back(std::move(entry));
    }
    nlohmann::json app = {
        {"name", backend.application},           {"route_prefix", backend.route_prefix},
        {"model", backend.model_name},           {"backend", backendName(backend)},
        {"slot_capacity", backend.slots.size()}, {"slots", slots}};
    if (grpc) {
      app["grpc_backend"] = grpcBackendName(backend);
    }
    apps.push_back(std::move(app));
  }
  return apps;
}

nlohmann::json registrationsJson(const std::map<std::string, ReplicaRegistration>& replicas) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [id, r] : replicas) {
    out.push_back(registrationJson(r));
  }
  return out;
}

void updateSlotMetrics(const RoutingTable& table, ManagerMetrics& metrics) {
  for (const Backend& backend : table.backends) {
    std::map<std::string, double> counts{{"free", 0}, {"active", 0}, {"draining", 0}};
    for (const Slot& slot : backend.slots) {
      counts[slotStateName(slot.state)] += 1;
    }
    for (const auto& [state, n] : counts) {
      metrics.setSlots(backendName(backend), state, n);
    }
  }
}

}  // namespace serve::manager
