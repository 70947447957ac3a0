#pragma once

// The Serve-style YAML config model shared by serve-replica and haproxy-manager.
// Parsing and validation live in serve_config.cc; the structs are plain values.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace serve {

struct HttpOptions {
  std::string host = "0.0.0.0";
  int port = 8000;
  double request_timeout_s = 0;  // 0 = no end-to-end timeout
  double keep_alive_timeout_s = 90;
};

struct GrpcOptions {
  int port = 9000;  // HAProxy's h2c gRPC listener; 0 = none (and no gRPC backends)
};

// kind: python (docs/python.md): the user's class, run by a Python worker process. kind onnx
// runs in the same worker (a built-in class) and sets only `python` and `arena_mb` here.
struct PythonModelSpec {
  std::string import_path;              // "pkg.module:Name" or "pkg.module.Name"
  std::string init_args_json = "[]";    // init_args, as JSON
  std::string init_kwargs_json = "{}";  // init_kwargs, as JSON
  std::string working_dir;  // put first on the worker's import path and made its cwd; "" = none
  std::string python;       // the interpreter; "" = SERVE_PYTHON, else python3 on PATH
  int arena_mb = 64;        // the shared-memory arena for payloads
};

struct ModelSpec {
  std::string kind;     // "mlp", "python", "onnx", or the built-in test models "noop" and "sleep"
  std::string name;     // the KServe v2 model name; defaults to the deployment name
  std::string path;     // weights file (mlp) or ONNX graph (onnx)
  double sleep_ms = 0;  // sleep only: time one forward pass takes
  PythonModelSpec python;
};

struct BatchingSpec {
  int max_batch_size = 1;  // 1 = batching off
  double batch_wait_timeout_s = 0;
  // How long, as a fraction of the last forward pass, an idle model may wait for the callers
  // that pass answered (replica/batch/batch_policy.h); 0 turns it off.
  double linger_fraction = kDefaultLingerFraction;

  static constexpr double kDefaultLingerFraction = 0.25;
};

struct ActorOptions {
  double num_cpus = 1;
  double num_gpus = 0;
};

struct DeploymentSpec {
  std::string name;
  int num_replicas = 1;
  int max_ongoing_requests = 5;
  int max_queued_requests = -1;  // -1 = unbounded
  double graceful_shutdown_timeout_s = 20;
  ActorOptions ray_actor_options;
  ModelSpec model;
  BatchingSpec batching;
  bool batching_configured = false;       // `batching:` was given (else a Python @batch's settings)
  std::string user_config_json = "null";  // Ray's user_config, as JSON (a mapping, or null)
  double health_check_period_s = 10;      // how often a Python class's check_health runs
  double health_check_timeout_s = 30;     // how long one may take before it counts as failed
  int line = 0;  // 1-based line of the deployment in the file, for messages
};

struct ApplicationSpec {
  std::string name;
  std::string route_prefix;
  std::vector<DeploymentSpec> deployments;
  int line = 0;
};

struct ServeConfig {
  std::string source;  // file name, for messages
  HttpOptions http_options;
  GrpcOptions grpc_options;
  std::vector<ApplicationSpec> applications;

  const ApplicationSpec* findApplication(const std::string& name) const;
};

// Parses and validates YAML text. `source` names the file in error messages, which read
// "<source>:<line>: <key path>: <rule broken>".
StatusOr<ServeConfig> parseServeConfig(const std::string& yaml_text, const std::string& source);

// Reads the file and parses it; a missing or unreadable file is an error naming the path.
StatusOr<ServeConfig> loadServeConfig(const std::string& path);

}  // namespace serve
