#pragma once

// How the supervisor talks to a running replica: one JSON request on its control socket, one
// JSON object back ({"op":"health"}, {"op":"reconfigure",...}; see docs/replica.md). An
// interface so that unit tests answer health polls and reconfigures without a replica.
#include <chrono>
#include <string>

#include "common/status.h"
#include "nlohmann/json.hpp"

namespace serve::manager {

class ReplicaControl {
 public:
  virtual ~ReplicaControl() = default;
  // The replica's reply object; errors name the socket. May be called from several threads
  // at once (a reconfigure runs beside the supervisor's loop).
  virtual StatusOr<nlohmann::json> request(const std::string& socket_path,
                                           const nlohmann::json& request,
                                           std::chrono::milliseconds timeout) = 0;
};

// Over the unix socket. Stateless, shared.
ReplicaControl& socketReplicaControl();

}  // namespace serve::manager
