#include "haproxy-manager/reconcile/registrations.h"

#include <arpa/inet.h>

#include "absl/strings/str_cat.h"
#include "common/names.h"

namespace serve::manager {
namespace {

bool isIpLiteral(const std::string& host) {
  unsigned char buffer[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

}  // namespace

Status validateRegistration(const ServeConfig& config,
                            const std::map<std::string, ReplicaRegistration>& registered,
                            const ReplicaRegistration& replica) {
  if (Status st = validateName("replica id", replica.replica_id); !st.ok()) {
    return st;
  }
  const ApplicationSpec* app = config.findApplication(replica.application);
  if (app == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no application named '", replica.application, "' in the config"));
  }
  if (replica.deployment != ingressDeployment(*app).name) {
    return absl::InvalidArgumentError(absl::StrCat(
        "deployment '", replica.deployment, "' is not the ingress deployment of application '",
        app->name, "' (the first one listed, '", ingressDeployment(*app).name,
        "'); only ingress replicas receive HTTP traffic"));
  }
  if (!isIpLiteral(replica.host)) {
    return absl::InvalidArgumentError(
        absl::StrCat("host '", replica.host, "' is not an IPv4 or IPv6 address"));
  }
  if (replica.http_port < 1 || replica.http_port > 65535 || replica.grpc_port < 0 ||
      replica.grpc_port > 65535) {
    return absl::InvalidArgumentError("ports must be in [1, 65535] (grpc_port 0 = none)");
  }
  for (const auto& [id, other] : registered) {
    if (id != replica.replica_id && other.host == replica.host &&
        other.http_port == replica.http_port) {
      return absl::AlreadyExistsError(absl::StrCat("replica '", id, "' already registered ",
                                                   replica.host, ":", replica.http_port));
    }
  }
  return absl::OkStatus();
}

}  // namespace serve::manager
