#pragma once

// Wires one replica together from its flags, environment and config, and runs it: bind,
// report ready, serve, and drain on SIGTERM.
#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

#include "common/env_settings.h"
#include "common/logging.h"
#include "common/serve_config.h"
#include "replica/app/control_socket.h"
#include "replica/app/flags.h"
#include "replica/core/inference_service.h"
#include "replica/frontend/grpc_frontend.h"
#include "replica/frontend/grpc_server.h"
#include "replica/frontend/http_frontend.h"
#include "replica/frontend/http_server.h"
#include "replica/health/health_monitor.h"
#include "replica/metrics/replica_metrics.h"
#include "replica/runtime/python/python_model.h"

namespace serve {

class ReplicaApp {
 public:
  // Loads config and model and binds the HTTP and gRPC ports; every failure is an error that names
  // its cause (file, key, flag, port range).
  static StatusOr<std::unique_ptr<ReplicaApp>> create(const ReplicaFlags& flags,
                                                      const ReplicaEnv& env);
  ~ReplicaApp();

  // Serves until SIGTERM/SIGINT (ShutdownSignals::install() must have run) and returns the
  // process exit code.
  int run();

 private:
  ReplicaApp() = default;
  Status bindHttp(const ReplicaFlags& flags, const ReplicaEnv& env);
  Status bindGrpc(const ReplicaFlags& flags, const ReplicaEnv& env);
  // Copies the health state to grpc.health.v1; called by the health monitor on every change.
  void syncGrpcHealth();
  // One JSON line on stdout for whoever started the replica; false when it could not be written.
  bool printEvent(const std::string& json_line);
  // Answers one request on the control socket (docs/replica.md, "Control socket").
  nlohmann::json control(const nlohmann::json& request);
  void abandon(int signal);

  ReplicaFlags flags_;
  ReplicaEnv env_;
  ServeConfig config_;
  std::string app_name_;
  std::string deployment_name_;
  std::chrono::milliseconds draining_period_{0};
  bool orphaned_ = false;  // the ready line had no reader: stopped at once, exit status 1

  std::unique_ptr<RequestLog> request_log_;
  std::unique_ptr<ReplicaMetrics> metrics_;
  std::unique_ptr<InferenceService> service_;
  python::PythonModel* python_model_ = nullptr;  // service_'s model, when it is kind python
  std::unique_ptr<HealthMonitor> health_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<HttpFrontend> frontend_;
  std::unique_ptr<GrpcFrontend> grpc_frontend_;
  std::unique_ptr<GrpcServer> grpc_server_;  // null with --grpc-port none
  // grpc_server_ once it serves: read by the health monitor's thread, which may report a change
  // before the server exists.
  std::atomic<GrpcServer*> grpc_health_target_{nullptr};
  std::mutex grpc_health_mu_;  // orders syncGrpcHealth() calls, so the last state read wins
  std::thread serve_thread_;
  std::unique_ptr<ControlSocket> control_;  // declared last: stopped first
};

}  // namespace serve
