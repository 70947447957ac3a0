#include "haproxy-manager/model/desired_state.h"

#include <algorithm>
#include <map>

namespace serve::manager {

const DeploymentSpec& ingressDeployment(const ApplicationSpec& app) {
  return app.deployments.front();  // validation guarantees at least one
}

std::size_t slotCapacity(std::size_t used, std::size_t min_slots) {
  std::size_t capacity = std::max<std::size_t>(min_slots, 1);
  while (capacity < used) {
    capacity *= 2;
  }
  return capacity;
}

namespace {

// Where HAProxy reaches a replica; its gRPC port only matters when the node listens for gRPC.
Endpoint endpointOf(const DesiredInputs& inputs, const ReplicaRegistration& replica) {
  return Endpoint{replica.host, replica.http_port,
                  inputs.global.grpc_port > 0 ? replica.grpc_port : 0};
}

Backend buildBackend(const DesiredInputs& inputs, const ApplicationSpec& app,
                     const Backend* previous,
                     const std::vector<const ReplicaRegistration*>& replicas) {
  const DeploymentSpec& ingress = ingressDeployment(app);
  Backend backend;
  backend.application = app.name;
  backend.route_prefix = app.route_prefix;
  backend.model_name = ingress.model.name;
  backend.max_ongoing_requests = ingress.max_ongoing_requests;
  backend.max_queued_requests = ingress.max_queued_requests;
  backend.passthrough = ingress.model.kind == "python";
  if (previous != nullptr) {
    backend.slots = previous->slots;
  }

  // Replicas by id; each one placed at most once.
  std::map<std::string, const ReplicaRegistration*> wanted;
  for (const ReplicaRegistration* replica : replicas) {
    wanted.emplace(replica->replica_id, replica);
  }

  // Existing slots: keep, drain, re-activate or free.
  for (std::size_t i = 0; i < backend.slots.size(); ++i) {
    Slot& slot = backend.slots[i];
    if (slot.state == SlotState::kFree) {
      continue;
    }
    auto it = wanted.find(slot.replica_id);
    // The slot is the replica's HTTP address; a new gRPC port (or the node's gRPC listener
    // turned on or off) only changes the slot's gRPC server.
    const bool same_endpoint = it != wanted.end() && it->second->host == slot.endpoint.host &&
                               it->second->http_port == slot.endpoint.port;
    if (same_endpoint) {
      slot.state = SlotState::kActive;  // keeps serving, or comes back from draining
      slot.endpoint = endpointOf(inputs, *it->second);
      wanted.erase(it);
      continue;
    }
    if (slot.state == SlotState::kActive) {
      slot.state = SlotState::kDraining;  // gone, or moved to another endpoint
    } else if (inputs.idle_draining_slots.count({app.name, i}) > 0) {
      slot = Slot{};
    }
  }

  // New replicas, lowest free slot first, in replica-id order for determinism.
  std::size_t occupied = 0;
  for (const Slot& slot : backend.slots) {
    occupied += slot.state == SlotState::kFree ? 0 : 1;
  }
  const std::size_t capacity =
      slotCapacity(occupied + wanted.size(), static_cast<std::size_t>(inputs.min_server_slots));
  if (backend.slots.size() < capacity) {
    backend.slots.resize(capacity);
  }
  std::size_t next = 0;
  for (const auto& [id, replica] : wanted) {
    while (backend.slots[next].state != SlotState::kFree) {
      ++next;
    }
    backend.slots[next] = Slot{SlotState::kActive, id, endpointOf(inputs, *replica)};
  }
  return backend;
}

}  // namespace

RoutingTable buildDesired(const DesiredInputs& inputs, const RoutingTable& previous) {
  RoutingTable table;
  table.global = inputs.global;
  table.draining = inputs.draining;

  std::map<std::string, std::vector<const ReplicaRegistration*>> by_app;
  for (const ReplicaRegistration& replica : inputs.replicas) {
    by_app[replica.application].push_back(&replica);
  }
  std::vector<const ApplicationSpec*> apps;
  for (const ApplicationSpec& app : inputs.config->applications) {
    apps.push_back(&app);
  }
  std::sort(apps.begin(), apps.end(),
            [](const ApplicationSpec* a, const ApplicationSpec* b) { return a->name < b->name; });
  for (const ApplicationSpec* app : apps) {
    const DeploymentSpec& ingress = ingressDeployment(*app);
    std::vector<const ReplicaRegistration*> replicas;
    for (const ReplicaRegistration* replica : by_app[app->name]) {
      if (replica->deployment == ingress.name) {
        replicas.push_back(replica);
      }
    }
    table.backends.push_back(buildBackend(inputs, *app, previous.findBackend(app->name), replicas));
  }
  return table;
}

}  // namespace serve::manager
