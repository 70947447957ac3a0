#pragma once

// The manager's control API: HTTP on 127.0.0.1 (RAY_SERVE_HAPROXY_CONTROL_PORT).
//
//   GET    /-/healthz          "ok"
//   GET    /status             manager, HAProxy and slot state (JSON)
//   GET    /routes             {"<prefix>":"<application>",...}
//   GET    /metrics            the manager's Prometheus metrics (also at :9101/metrics/manager)
//   POST   /replicas           register: {"replica_id","application","deployment","host",
//                              "http_port","grpc_port","pid"}
//   DELETE /replicas/<id>      deregister
//   POST   /deploy             apply a serve config: the YAML text is the body; the
//                              X-Serve-Config-Source header names it in error messages
//   POST   /drain, /undrain    node drain: /-/healthz on :8000 answers 503 while draining
//
// Changing requests must carry "Authorization: Bearer <token>", the token the manager writes
// (mode 0600) to control.token beside haproxy.cfg: any local user can reach 127.0.0.1, but only
// the manager's user (or root) can read the token. Reads need no token.
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"
#include "haproxy-manager/reconcile/manager.h"
#include "nlohmann/json.hpp"

namespace httplib {
class Server;
}

namespace serve::manager {

inline constexpr char kControlTokenFile[] = "control.token";

// What the node adds to the manager: deploys also reach the replica supervisor, and status
// shows its processes. Unset hooks fall back to the manager alone.
struct ControlHooks {
  std::function<StatusOr<ApplyOutcome>(ServeConfig config, const std::string& source,
                                       const std::string& yaml)>
      deploy;
  std::function<nlohmann::json()> extra_status;
};

class ControlServer {
 public:
  ControlServer(Manager& manager, std::string token, ControlHooks hooks = {});
  ~ControlServer();

  // Binds 127.0.0.1:port and serves on a background thread.
  Status start(int port);
  void stop();

 private:
  void routes();

  Manager& manager_;
  const std::string token_;
  const ControlHooks hooks_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

// HTTP status for a Status code, in one place.
int httpStatusOf(const Status& status);

// Creates the token file (random, mode 0600) and returns the token.
StatusOr<std::string> writeControlToken(const std::string& path);

}  // namespace serve::manager
