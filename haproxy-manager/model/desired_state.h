#pragma once

// Builds the desired routing table from the config, the live replicas and the previous table.
// Pure. Slot assignments are sticky: a replica keeps its slot for as long as it is registered,
// a new replica takes the lowest free slot, a departed replica's slot drains and is freed only
// once HAProxy has shown it idle, and capacity doubles (from the configured minimum) when a
// backend runs out of free slots. Capacity never shrinks: shrinking would cost a reload.
#include <cstddef>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/serve_config.h"
#include "haproxy-manager/model/routing_table.h"

namespace serve::manager {

// A replica as it announces itself to the manager.
struct ReplicaRegistration {
  std::string replica_id;  // unique on the node
  std::string application;
  std::string deployment;
  std::string host;
  int http_port = 0;
  int grpc_port = 0;  // 0 = none
  int pid = 0;        // 0 = unknown (not on this node, or not ours to watch)

  friend bool operator==(const ReplicaRegistration&, const ReplicaRegistration&) = default;
};

// (application, slot index): a draining slot that HAProxy reported idle after it was drained.
using SlotRef = std::pair<std::string, std::size_t>;

struct DesiredInputs {
  const ServeConfig* config = nullptr;
  GlobalSettings global;
  int min_server_slots = 16;
  std::vector<ReplicaRegistration> replicas;  // ready replicas of ingress deployments
  std::set<SlotRef> idle_draining_slots;
  bool draining = false;
};

RoutingTable buildDesired(const DesiredInputs& inputs, const RoutingTable& previous);

// The deployment of an application that receives its HTTP traffic: the first one listed.
const DeploymentSpec& ingressDeployment(const ApplicationSpec& app);

// Slots a backend needs for `used` occupied slots: min_slots doubled until it fits.
std::size_t slotCapacity(std::size_t used, std::size_t min_slots);

}  // namespace serve::manager
