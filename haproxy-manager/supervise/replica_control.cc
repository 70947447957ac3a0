#include "haproxy-manager/supervise/replica_control.h"

#include "absl/strings/str_cat.h"
#include "haproxy-manager/haproxy/unix_socket.h"

namespace serve::manager {
namespace {

class SocketReplicaControl final : public ReplicaControl {
 public:
  StatusOr<nlohmann::json> request(const std::string& socket_path, const nlohmann::json& request,
                                   std::chrono::milliseconds timeout) override {
    StatusOr<std::string> reply = unixSocketRequest(socket_path, request.dump() + "\n", timeout);
    if (!reply.ok()) {
      return reply.status();
    }
    nlohmann::json parsed = nlohmann::json::parse(*reply, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) {
      return absl::InternalError(absl::StrCat(socket_path, ": not a JSON object: ", *reply));
    }
    return parsed;
  }
};

}  // namespace

ReplicaControl& socketReplicaControl() {
  static SocketReplicaControl control;
  return control;
}

}  // namespace serve::manager
