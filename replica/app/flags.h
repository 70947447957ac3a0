#pragma once

// serve-replica's command line, parsed with CLI11 (common/cli.h). Parsing is pure (argv in,
// flags or an error out) so every rule is unit-tested; errors name the flag and the accepted
// range.
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace serve {

struct ReplicaFlags {
  static constexpr int kNoGrpc = -1;  // --grpc-port none

  bool help = false;
  std::string config_path;
  std::string app;
  std::string deployment;           // empty: the application's only deployment
  int http_port = 0;                // 0: first free port in the environment's range
  int grpc_port = 0;                // 0: likewise in the gRPC range; kNoGrpc: no gRPC front end
  std::optional<std::string> host;  // overrides RAY_SERVE_DEFAULT_HTTP_HOST
  std::string port_file;            // where to also write the ready line
  std::string control_socket;       // the manager's control channel; empty: none
  std::string base_dir;             // relative paths in the config resolve here; empty: its folder
  size_t max_body_bytes = 16 * 1024 * 1024;
  size_t http_max_threads = 512;
  size_t grpc_max_threads = 512;
  size_t max_connections = 1024;
  double request_read_timeout_s = 10;
  double watchdog_timeout_s = 30;
  std::optional<double> draining_period_s;  // overrides the environment
  std::optional<std::string> log_dir;       // overrides RAY_SERVE_LOG_DIR
};

StatusOr<ReplicaFlags> parseReplicaFlags(const std::vector<std::string>& args);
std::string replicaUsage();

}  // namespace serve
