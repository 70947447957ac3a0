#pragma once

// Starts the real haproxy-manager binary (which starts a real HAProxy) for integration tests,
// everything under a per-test directory and on free loopback ports, and talks to its control
// API and admin socket.
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/support/child_process.h"
#include "tests/support/http_client.h"
#include "tests/support/replica_process.h"

namespace serve::testing {

struct ManagerTestOptions {
  // The serve config; "{{HTTP_PORT}}" and "{{GRPC_PORT}}" are replaced by the free ports HAProxy
  // will serve HTTP and gRPC on. Without a grpc_options key, one naming the gRPC port is added.
  std::string config_yaml;
  std::string haproxy_binary;  // empty: haproxy on PATH
  // Added to the defaults below (fast health checks, short coalescing, test paths).
  std::map<std::string, std::string> env;
  // Whether the manager runs the replicas itself; false: `--no-replicas`, the tests register
  // the replicas they start.
  bool supervise = false;
  // Used as is instead of a written copy of config_yaml (config_yaml is then ignored).
  std::string config_path;
};

class ManagerProcess {
 public:
  explicit ManagerProcess(ManagerTestOptions options);
  ~ManagerProcess();  // SIGTERM, then SIGKILL if it does not stop

  bool start(std::chrono::milliseconds timeout = std::chrono::seconds(20));

  int httpPort() const { return http_port_; }
  int grpcPort() const { return grpc_port_; }
  int metricsPort() const { return metrics_port_; }
  int statsPort() const { return stats_port_; }
  int controlPort() const { return control_port_; }
  std::string url(const std::string& path) const;  // through HAProxy's :http_port
  std::string controlUrl(const std::string& path) const;
  const std::string& dir() const { return dir_.path(); }
  std::string adminSocket() const { return dir_.path() + "/run/admin.sock"; }
  std::string configFile() const { return dir_.path() + "/run/haproxy.cfg"; }

  // Control API calls (with the token where needed).
  HttpResult registerReplica(const std::string& app, const std::string& deployment, int port,
                             const std::string& id, int pid = 0, int grpc_port = 0);
  HttpResult deregister(const std::string& id);
  HttpResult deploy(const std::string& yaml);  // "{{HTTP_PORT}}" replaced as in start()
  HttpResult post(const std::string& path);
  nlohmann::json status();

  // One command on the admin socket, as socat would send it.
  std::string admin(const std::string& command);
  // The HAProxy worker pid answering the admin socket (show info), or 0.
  int workerPid();

  void signal(int sig) { child_->signal(sig); }
  std::optional<int> wait(std::chrono::milliseconds timeout) { return child_->wait(timeout); }
  std::string output() const { return child_->output(); }
  // After the manager was killed: start it again with the same files, ports and environment.
  bool startAgain(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Pids of every running serve-replica this manager's node started (by this test's directory
  // in their command line), whether or not any manager still knows them.
  std::set<int> replicaPids() const;

 private:
  std::string expand(const std::string& yaml) const;

  ManagerTestOptions options_;
  TempDir dir_;
  std::unique_ptr<ChildProcess> child_ = std::make_unique<ChildProcess>();
  std::vector<std::string> argv_;
  std::map<std::string, std::string> env_;
  int http_port_ = 0;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  int stats_port_ = 0;
  int control_port_ = 0;
  std::string token_;
};

// A replica of application `app` (deployment `deployment`, noop model unless `model` says
// otherwise) started from `config_yaml`, quiet on stderr.
std::unique_ptr<ReplicaProcess> startTestReplica(const std::string& config_yaml,
                                                 const std::string& app,
                                                 std::map<std::string, std::string> env = {});

// Polls `predicate` every `step` until it holds or `timeout` passes; returns the last result.
template <typename F>
bool eventually(F predicate, std::chrono::milliseconds timeout = std::chrono::seconds(10),
                std::chrono::milliseconds step = std::chrono::milliseconds(20)) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (predicate()) {
      return true;
    }
    if (std::chrono::steady_clock::now() >= until) {
      return false;
    }
    std::this_thread::sleep_for(step);
  }
}

}  // namespace serve::testing
