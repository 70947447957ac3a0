#pragma once

// What the replica supervisor needs from whoever routes traffic to replicas: put a ready replica
// into a slot, take one out, learn when its slot has drained, list what is registered (a new
// supervisor compares it with the replicas it adopts), and count restarts. An interface,
// so that the supervisor does not depend on the reconciler (which sits above it) and unit tests
// can record the calls in order with a fake.
#include <string>
#include <vector>

#include "common/status.h"
#include "haproxy-manager/model/apply_outcome.h"
#include "haproxy-manager/model/desired_state.h"

namespace serve::manager {

class ReplicaRegistry {
 public:
  virtual ~ReplicaRegistry() = default;

  // Returns once traffic is routed to the replica (or with why it could not be).
  virtual StatusOr<ApplyOutcome> registerReplica(const ReplicaRegistration& replica) = 0;
  // Returns once the replica's slot drains: it gets no new requests.
  virtual StatusOr<ApplyOutcome> deregisterReplica(const std::string& replica_id) = 0;
  // True once no slot, active or draining, holds the replica: nothing reaches it any more. A
  // slot holds it by its id, or by its HTTP endpoint where an earlier manager put it in HAProxy
  // and died before recording whose it was.
  virtual bool slotReleased(const ReplicaRegistration& replica) const = 0;
  // Every replica registered now, in no particular order.
  virtual std::vector<ReplicaRegistration> registrations() const = 0;
  // A replica that exited unexpectedly is being restarted (counted in the metrics).
  virtual void recordReplicaRestart() = 0;
};

}  // namespace serve::manager
