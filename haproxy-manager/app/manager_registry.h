#pragma once

// The node's Manager as the replica supervisor's registry. An adapter rather than a base class
// of Manager: the supervisor sees five calls, and the Manager stays free to change shape.
#include <string>

#include "haproxy-manager/reconcile/manager.h"
#include "haproxy-manager/supervise/replica_registry.h"

namespace serve::manager {

class ManagerRegistry final : public ReplicaRegistry {
 public:
  explicit ManagerRegistry(Manager& manager) : manager_(manager) {}

  StatusOr<ApplyOutcome> registerReplica(const ReplicaRegistration& replica) override {
    return manager_.registerReplica(replica);
  }
  StatusOr<ApplyOutcome> deregisterReplica(const std::string& replica_id) override {
    return manager_.deregisterReplica(replica_id);
  }
  bool slotReleased(const ReplicaRegistration& replica) const override {
    return manager_.slotReleased(replica);
  }
  std::vector<ReplicaRegistration> registrations() const override {
    return manager_.registrations();
  }
  void recordReplicaRestart() override { manager_.recordReplicaRestart(); }

 private:
  Manager& manager_;
};

}  // namespace serve::manager
