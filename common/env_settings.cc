#include "common/env_settings.h"

#include <arpa/inet.h>

#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/env_parse.h"

namespace serve {

EnvLookup processEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) {
      return std::nullopt;
    }
    return std::string(value);
  };
}

namespace {

// The variables' rows in common/config_keys.h: ranges, defaults and rules come from there.
using keys::envKey;
constexpr const keys::Key& kMinHttpPortKey = envKey("RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT");
constexpr const keys::Key& kMaxHttpPortKey = envKey("RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT");
constexpr const keys::Key& kMinGrpcPortKey = envKey("RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT");
constexpr const keys::Key& kMaxGrpcPortKey = envKey("RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT");
constexpr const keys::Key& kHttpHostKey = envKey("RAY_SERVE_DEFAULT_HTTP_HOST");
constexpr const keys::Key& kPortRetryCount = envKey("RAY_SERVE_DIRECT_INGRESS_PORT_RETRY_COUNT");
constexpr const keys::Key& kMinDrainingPeriod =
    envKey("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S");
constexpr const keys::Key& kLogBufferSize = envKey("RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE");
constexpr const keys::Key& kLogDirKey = envKey("RAY_SERVE_LOG_DIR");
constexpr const keys::Key& kOmpNumThreads = envKey("OMP_NUM_THREADS");
constexpr const keys::Key& kGrpcMaxMessageLength =
    envKey("RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH");
// Names for the messages that blame one variable of a pair (views of literals, so terminated).
constexpr const char* kMinHttpPort = kMinHttpPortKey.name.data();
constexpr const char* kMaxHttpPort = kMaxHttpPortKey.name.data();
constexpr const char* kMinGrpcPort = kMinGrpcPortKey.name.data();
constexpr const char* kMaxGrpcPort = kMaxGrpcPortKey.name.data();
constexpr char kHttpHost[] = "RAY_SERVE_DEFAULT_HTTP_HOST";
constexpr char kLogToStderr[] = "RAY_SERVE_LOG_TO_STDERR";
constexpr char kThroughputOptimized[] = "RAY_SERVE_THROUGHPUT_OPTIMIZED";
constexpr char kLogDir[] = "RAY_SERVE_LOG_DIR";

using env_parse::boolSetting;
using env_parse::envError;
using env_parse::intSetting;
using env_parse::numberSetting;
using env_parse::Setting;

bool isIpOrLocalhost(const std::string& host) {
  unsigned char buffer[sizeof(struct in6_addr)];
  return host == "localhost" || inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

std::string range(int min, int max) { return absl::StrCat("[", min, ", ", max, ")"); }

// A port range [min, max): min must lie below max. Blames min when it was set, else max.
Status checkRange(const Setting<int>& min, const char* min_name, const Setting<int>& max,
                  const char* max_name) {
  if (min.value < max.value) {
    return absl::OkStatus();
  }
  if (min.raw.has_value()) {
    return envError(min_name, *min.raw,
                    absl::StrCat("a value below ", max_name, " (", max.value, ")"));
  }
  return envError(max_name, *max.raw,
                  absl::StrCat("a value above ", min_name, " (", min.value, ")"));
}

}  // namespace

StatusOr<ReplicaEnv> readReplicaEnv(const EnvLookup& env) {
  ReplicaEnv result;

  // Ports are half-open ranges [min, max), so the largest max is 65536.
  StatusOr<Setting<int>> min_http = intSetting(env, kMinHttpPortKey, result.min_http_port);
  if (!min_http.ok()) {
    return min_http.status();
  }
  StatusOr<Setting<int>> max_http = intSetting(env, kMaxHttpPortKey, result.max_http_port);
  if (!max_http.ok()) {
    return max_http.status();
  }
  StatusOr<Setting<int>> min_grpc = intSetting(env, kMinGrpcPortKey, result.min_grpc_port);
  if (!min_grpc.ok()) {
    return min_grpc.status();
  }
  StatusOr<Setting<int>> max_grpc = intSetting(env, kMaxGrpcPortKey, result.max_grpc_port);
  if (!max_grpc.ok()) {
    return max_grpc.status();
  }
  if (Status status = checkRange(*min_http, kMinHttpPort, *max_http, kMaxHttpPort); !status.ok()) {
    return status;
  }
  if (Status status = checkRange(*min_grpc, kMinGrpcPort, *max_grpc, kMaxGrpcPort); !status.ok()) {
    return status;
  }
  if (min_http->value < max_grpc->value && min_grpc->value < max_http->value) {
    const std::string rule = absl::StrCat(
        "the HTTP port range ", range(min_http->value, max_http->value),
        " and the gRPC port range ", range(min_grpc->value, max_grpc->value), " not to overlap");
    // The defaults do not overlap, so at least one of the four was set.
    for (auto [setting, name] :
         {std::pair{&*min_grpc, kMinGrpcPort}, std::pair{&*max_grpc, kMaxGrpcPort},
          std::pair{&*min_http, kMinHttpPort}, std::pair{&*max_http, kMaxHttpPort}}) {
      if (setting->raw.has_value()) {
        return envError(name, *setting->raw, rule);
      }
    }
    return absl::InvalidArgumentError(absl::StrCat("expected ", rule));
  }
  result.min_http_port = min_http->value;
  result.max_http_port = max_http->value;
  result.min_grpc_port = min_grpc->value;
  result.max_grpc_port = max_grpc->value;

  if (std::optional<std::string> host = env(kHttpHost); host.has_value()) {
    if (!isIpOrLocalhost(*host)) {
      return envError(kHttpHost, *host, keys::ruleText(kHttpHostKey));
    }
    result.http_host = *host;
  }

  StatusOr<Setting<int>> retries = intSetting(env, kPortRetryCount, result.port_retry_count);
  if (!retries.ok()) {
    return retries.status();
  }
  result.port_retry_count = retries->value;

  StatusOr<double> draining = numberSetting(env, kMinDrainingPeriod, result.min_draining_period_s);
  if (!draining.ok()) {
    return draining.status();
  }
  result.min_draining_period_s = *draining;

  // Throughput mode changes two defaults; values set explicitly still win.
  StatusOr<bool> throughput = boolSetting(env, kThroughputOptimized, false);
  if (!throughput.ok()) {
    return throughput.status();
  }
  result.throughput_optimized = *throughput;

  StatusOr<Setting<int>> buffer = intSetting(env, kLogBufferSize, *throughput ? 1000 : 1);
  if (!buffer.ok()) {
    return buffer.status();
  }
  result.request_path_log_buffer_size = buffer->value;

  StatusOr<bool> to_stderr = boolSetting(env, kLogToStderr, !*throughput);
  if (!to_stderr.ok()) {
    return to_stderr.status();
  }
  result.log_to_stderr = *to_stderr;

  if (std::optional<std::string> dir = env(kLogDir); dir.has_value()) {
    if (dir->empty()) {
      return envError(kLogDir, *dir, keys::ruleText(kLogDirKey));
    }
    result.log_dir = *dir;
  }

  // 0 = unset: the deployment's num_cpus decides.
  StatusOr<Setting<int>> omp = intSetting(env, kOmpNumThreads, 0);
  if (!omp.ok()) {
    return omp.status();
  }
  result.omp_num_threads = omp->value;

  // From 1 KiB (a small request must fit) to what gRPC can represent (a signed 32-bit size):
  // the row's range.
  StatusOr<Setting<int>> grpc_max =
      intSetting(env, kGrpcMaxMessageLength, result.grpc_max_message_length);
  if (!grpc_max.ok()) {
    return grpc_max.status();
  }
  result.grpc_max_message_length = grpc_max->value;
  return result;
}

}  // namespace serve
