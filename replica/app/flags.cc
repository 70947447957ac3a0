#include "replica/app/flags.h"

#include <charconv>
#include <cmath>
#include <functional>
#include <map>

namespace serve {
namespace {

Status flagError(const std::string& flag, const std::string& value, const std::string& rule) {
  return absl::InvalidArgumentError(flag + "=" + value + ": expected " + rule);
}

StatusOr<double> parseNumber(const std::string& flag, const std::string& v, double lo, double hi) {
  double d = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
  std::string rule = "a number in [" + std::to_string(static_cast<int64_t>(lo)) + ", " +
                     std::to_string(static_cast<int64_t>(hi)) + "]";
  if (ec != std::errc() || p != v.data() + v.size() || !std::isfinite(d) || d < lo || d > hi) {
    return flagError(flag, v, rule);
  }
  return d;
}

StatusOr<int64_t> parseInt(const std::string& flag, const std::string& v, int64_t lo, int64_t hi) {
  int64_t i = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), i);
  if (ec != std::errc() || p != v.data() + v.size() || i < lo || i > hi) {
    return flagError(flag, v,
                     "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return i;
}

}  // namespace

std::string replicaUsage() {
  return R"(serve-replica: serves one deployment of one application from a Serve config file.

Usage: serve-replica --config FILE --app NAME [--deployment NAME] [options]

Required:
  --config FILE              Serve-style YAML config (see docs/configuration.md)
  --app NAME                 application to serve (applications[].name)

Options:
  --deployment NAME          deployment to serve; may be omitted when the application has one
  --http-port N              0-65535: bind exactly port N; 0 (the default) = the first free
                             port in [RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT, ..._MAX_HTTP_PORT)
  --grpc-port N|none         0-65535: bind the gRPC server (KServe v2 GRPCInferenceService and
                             grpc.health.v1) on exactly port N; 0 (the default) = the first
                             free port in [RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT, ..._MAX_GRPC_PORT);
                             none = no gRPC server (the ready line says "grpc_port":null)
  --host ADDR                bind address; default RAY_SERVE_DEFAULT_HTTP_HOST (127.0.0.1)
  --port-file PATH           also write the ready line (JSON) to PATH, atomically
  --base-dir DIR             resolve relative paths in the config (model files, working_dir)
                             against DIR instead of the config file's folder (the manager runs
                             replicas from a snapshot of the config in its state directory)
  --control-socket PATH      answer the manager's control requests (reconfigure, health) on
                             a unix socket at PATH, created mode 0600 (docs/replica.md)
  --max-body-bytes N         largest request body accepted, 1-1073741824 (default 16777216);
                             larger bodies get 413
  --http-max-threads N       most connection threads, 8-16384 (default 512)
  --request-read-timeout-s S a request must arrive whole within S seconds, 0.1-3600
                             (default 10); slower clients get 408
  --watchdog-timeout-s S     report UNHEALTHY when queued work makes no progress for S
                             seconds, 0-86400 (default 30; 0 disables the watchdog)
  --draining-period-s S      after SIGTERM keep serving S seconds before closing listeners,
                             0-3600 (default RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S)
  --log-dir DIR              log directory (default RAY_SERVE_LOG_DIR or logs/serve)
  --help                     this text

When ready it prints one line on stdout:
  {"event":"ready","http_port":N,"grpc_port":M,"pid":N}
SIGTERM drains (health turns 503 DRAINING, in-flight and queued requests finish, exit 0);
a second SIGTERM or SIGINT stops at once and logs the requests it abandons.
)";
}

StatusOr<ReplicaFlags> parseReplicaFlags(const std::vector<std::string>& args) {
  ReplicaFlags f;
  using Setter = std::function<Status(const std::string& flag, const std::string& value)>;
  auto assign = [](auto& field, auto parsed) -> Status {
    if (!parsed.ok()) {
      return parsed.status();
    }
    field = static_cast<std::remove_reference_t<decltype(field)>>(*parsed);
    return absl::OkStatus();
  };
  auto nonEmpty = [](std::string& field) {
    return [&field](const std::string& flag, const std::string& v) -> Status {
      if (v.empty()) {
        return flagError(flag, v, "a non-empty value");
      }
      field = v;
      return absl::OkStatus();
    };
  };
  std::string host, log_dir;
  double draining = -1;
  const std::map<std::string, Setter> setters = {
      {"--config", nonEmpty(f.config_path)},
      {"--app", nonEmpty(f.app)},
      {"--deployment", nonEmpty(f.deployment)},
      {"--host", nonEmpty(host)},
      {"--port-file", nonEmpty(f.port_file)},
      {"--control-socket", nonEmpty(f.control_socket)},
      {"--base-dir", nonEmpty(f.base_dir)},
      {"--log-dir", nonEmpty(log_dir)},
      {"--http-port",
       [&](const std::string& fl, const std::string& v) {
         return assign(f.http_port, parseInt(fl, v, 0, 65535));
       }},
      {"--grpc-port",
       [&](const std::string& fl, const std::string& v) -> Status {
         if (v == "none") {
           f.grpc_port = ReplicaFlags::kNoGrpc;
           return absl::OkStatus();
         }
         auto port = parseInt(fl, v, 0, 65535);
         if (!port.ok()) {
           return flagError(fl, v, "an integer in [0, 65535] or \"none\"");
         }
         f.grpc_port = static_cast<int>(*port);
         return absl::OkStatus();
       }},
      {"--max-body-bytes",
       [&](const std::string& fl, const std::string& v) {
         return assign(f.max_body_bytes, parseInt(fl, v, 1, int64_t{1} << 30));
       }},
      {"--http-max-threads",
       [&](const std::string& fl, const std::string& v) {
         return assign(f.http_max_threads, parseInt(fl, v, 8, 16384));
       }},
      {"--request-read-timeout-s",
       [&](const std::string& fl, const std::string& v) {
         auto d = parseNumber(fl, v, 0.1, 3600);
         if (!d.ok()) {
           return flagError(fl, v, "a number in [0.1, 3600]");
         }
         f.request_read_timeout_s = *d;
         return absl::OkStatus();
       }},
      {"--watchdog-timeout-s",
       [&](const std::string& fl, const std::string& v) {
         return assign(f.watchdog_timeout_s, parseNumber(fl, v, 0, 86400));
       }},
      {"--draining-period-s",
       [&](const std::string& fl, const std::string& v) {
         return assign(draining, parseNumber(fl, v, 0, 3600));
       }},
  };

  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg == "--help" || arg == "-h") {
      f.help = true;
      return f;
    }
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto it = setters.find(arg);
    if (it == setters.end()) {
      return absl::InvalidArgumentError("unknown flag '" + arg + "' (see --help)");
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(arg + ": missing value (see --help)");
      }
      value = args[++i];
    }
    if (Status st = it->second(arg, value); !st.ok()) {
      return st;
    }
  }
  if (f.config_path.empty()) {
    return absl::InvalidArgumentError("--config is required (see --help)");
  }
  if (f.app.empty()) {
    return absl::InvalidArgumentError("--app is required (see --help)");
  }
  if (!host.empty()) {
    f.host = host;
  }
  if (!log_dir.empty()) {
    f.log_dir = log_dir;
  }
  if (draining >= 0) {
    f.draining_period_s = draining;
  }
  return f;
}

}  // namespace serve
