#pragma once

// The routing table and the registrations as `haproxy-manager status` shows them, and the slot
// gauges. Pure.
#include <map>
#include <string>

#include "haproxy-manager/metrics/manager_metrics.h"
#include "haproxy-manager/model/desired_state.h"
#include "haproxy-manager/model/routing_table.h"
#include "nlohmann/json.hpp"

namespace serve::manager {

const char* slotStateName(SlotState state);  // "free", "active", "draining"

// One entry per application: its backends, route prefix, model, capacity and occupied slots
// (state, replica, HTTP and gRPC addresses).
nlohmann::json applicationsJson(const RoutingTable& table);
nlohmann::json registrationsJson(const std::map<std::string, ReplicaRegistration>& replicas);

// serve_haproxy_slots{backend,state}.
void updateSlotMetrics(const RoutingTable& table, ManagerMetrics& metrics);

}  // namespace serve::manager
