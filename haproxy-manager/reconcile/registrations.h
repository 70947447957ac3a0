#pragma once

// The rules a replica registration must meet before it can take a slot. Pure.
#include <map>
#include <string>

#include "common/serve_config.h"
#include "common/status.h"
#include "haproxy-manager/model/desired_state.h"

namespace serve::manager {

// A valid replica id; an application of `config` and its ingress deployment (the first one
// listed: only it receives HTTP traffic); an IP literal host (nothing resolves names at request
// time); ports in range; no other registration at the same host and HTTP port. The error names
// the rule and the value.
Status validateRegistration(const ServeConfig& config,
                            const std::map<std::string, ReplicaRegistration>& registered,
                            const ReplicaRegistration& replica);

}  // namespace serve::manager
