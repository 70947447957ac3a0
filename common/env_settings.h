#pragma once

// RAY_SERVE_* environment variables, read once at start into a plain struct. Every variable
// the code reads is listed in docs/configuration.md with its default.
#include <functional>
#include <optional>
#include <string>

#include "common/status.h"

namespace serve {

// Looks a variable up; returns nullopt when unset. Injected so tests need no real environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup processEnv();

struct ReplicaEnv {
  int min_http_port = 30000;  // [min, max) range the replica's HTTP port is picked from
  int max_http_port = 31000;
  int min_grpc_port = 40000;
  int max_grpc_port = 41000;
  std::string http_host = "127.0.0.1";
  int port_retry_count = 100;         // RAY_SERVE_DIRECT_INGRESS_PORT_RETRY_COUNT
  double min_draining_period_s = 30;  // RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S
  int request_path_log_buffer_size = 1;
  bool log_to_stderr = true;
  bool throughput_optimized = false;
  std::string log_dir = "logs/serve";  // RAY_SERVE_LOG_DIR
  int omp_num_threads = 0;             // OMP_NUM_THREADS: BLAS threads; 0 = unset (use num_cpus)
  // RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH: largest gRPC message received or sent, in bytes
  int grpc_max_message_length = 4 * 1024 * 1024;
};

// Reads and validates the replica's variables. Errors name the variable, the value and the
// accepted range, e.g. "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT=abc: expected an integer in [1,
// 65535]".
StatusOr<ReplicaEnv> readReplicaEnv(const EnvLookup& env);

}  // namespace serve
