#include "haproxy-manager/model/manager_env.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/config_keys.h"
#include "common/env_parse.h"

namespace serve::manager {

namespace {

using env_parse::boolSetting;
using env_parse::durationSetting;
using env_parse::envError;
using env_parse::intSetting;
using env_parse::numberSetting;
using env_parse::parseInteger;
using env_parse::parseNumber;
using env_parse::Setting;

constexpr char kBinaryPath[] = "RAY_SERVE_HAPROXY_BINARY_PATH";
constexpr char kSocketPath[] = "RAY_SERVE_HAPROXY_SOCKET_PATH";
constexpr char kConfigFile[] = "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC";
constexpr char kTemplateDir[] = "RAY_SERVE_HAPROXY_TEMPLATE_DIR";
constexpr char kTimeoutServer[] = "RAY_SERVE_HAPROXY_TIMEOUT_SERVER_S";
constexpr char kTimeoutConnect[] = "RAY_SERVE_HAPROXY_TIMEOUT_CONNECT_S";
constexpr char kKeepAlive[] = "RAY_SERVE_HTTP_KEEP_ALIVE_TIMEOUT_S";
constexpr char kRetries[] = "RAY_SERVE_HAPROXY_RETRIES";
constexpr char kBalance[] = "RAY_SERVE_HAPROXY_BALANCE_ALGORITHM";
constexpr char kMetricsPort[] = "RAY_SERVE_HAPROXY_METRICS_PORT";
constexpr char kStatsPort[] = "RAY_SERVE_HAPROXY_STATS_PORT";
constexpr char kControlPort[] = "RAY_SERVE_HAPROXY_CONTROL_PORT";
constexpr char kStatsBind[] = "RAY_SERVE_HAPROXY_STATS_BIND";
constexpr char kStatsAuth[] = "RAY_SERVE_HAPROXY_STATS_AUTH";
constexpr char kLogDir[] = "RAY_SERVE_LOG_DIR";
constexpr char kLogToStderr[] = "RAY_SERVE_LOG_TO_STDERR";
constexpr char kThroughputOptimized[] = "RAY_SERVE_THROUGHPUT_OPTIMIZED";

// HAProxy counts time in milliseconds: a shorter timeout or interval would render as 0, which
// means "none" for a timeout and is refused for a check interval.
constexpr double kMinSeconds = 0.001;

// The plain settings, as tables so that the code reads like docs/configuration.md.
struct IntVar {
  const char* name;
  int ManagerEnv::*field;
  int min;
  int max;
};

constexpr IntVar kIntVars[] = {
    {"RAY_SERVE_HAPROXY_MAXCONN", &ManagerEnv::maxconn, 1, 10'000'000},
    {"RAY_SERVE_HAPROXY_NBTHREAD", &ManagerEnv::nbthread, 1, 256},
    {"RAY_SERVE_HAPROXY_HEALTH_CHECK_FALL", &ManagerEnv::health_check_fall, 1, 100},
    {"RAY_SERVE_HAPROXY_HEALTH_CHECK_RISE", &ManagerEnv::health_check_rise, 1, 100},
    {"RAY_SERVE_HAPROXY_OBSERVE_ERROR_LIMIT", &ManagerEnv::observe_error_limit, 1, 100},
    {"RAY_SERVE_HAPROXY_MIN_SERVER_SLOTS", &ManagerEnv::min_server_slots, 1, 4096},
};

// Seconds, written as plain numbers (the names end in _S).
struct SecondsVar {
  const char* name;
  double ManagerEnv::*field;
  double min;
  double max;
};

constexpr SecondsVar kSecondsVars[] = {
    {"RAY_SERVE_HAPROXY_HARD_STOP_AFTER_S", &ManagerEnv::hard_stop_after_s, 1, 86400},
    {"RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S", &ManagerEnv::timeout_client_s, kMinSeconds, 86400},
    {"RAY_SERVE_CONTROL_LOOP_INTERVAL_S", &ManagerEnv::control_loop_interval_s, 0.01, 60},
    {"RAY_SERVE_HAPROXY_BROADCAST_COALESCE_S", &ManagerEnv::broadcast_coalesce_s, 0, 60},
    {"RAY_SERVE_HAPROXY_STARTUP_TIMEOUT_S", &ManagerEnv::startup_timeout_s, 1, 600},
    {"RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S", &ManagerEnv::node_draining_period_s, 0, 3600},
};

// Health-check intervals also take HAProxy's "s" / "ms" suffixes: Ray writes its defaults as
// "5s" and "250ms".
constexpr SecondsVar kDurationVars[] = {
    {"RAY_SERVE_HAPROXY_HEALTH_CHECK_INTER", &ManagerEnv::health_check_inter_s, kMinSeconds, 3600},
    {"RAY_SERVE_HAPROXY_HEALTH_CHECK_FASTINTER", &ManagerEnv::health_check_fastinter_s, kMinSeconds,
     3600},
    {"RAY_SERVE_HAPROXY_HEALTH_CHECK_DOWNINTER", &ManagerEnv::health_check_downinter_s, kMinSeconds,
     3600},
};

// A timeout that is left out of haproxy.cfg unless set. Where Ray reads 0 as "disabled",
// `zero_unsets` keeps that meaning.
StatusOr<std::optional<double>> optionalSeconds(const EnvLookup& env, const char* name, double max,
                                                bool zero_unsets) {
  std::optional<std::string> raw = env(name);
  if (!raw.has_value()) {
    return std::nullopt;
  }
  std::optional<double> value = parseNumber(*raw);
  if (zero_unsets && value.has_value() && *value == 0) {
    return std::nullopt;
  }
  if (!value.has_value() || *value < kMinSeconds || *value > max) {
    const std::string range = absl::StrCat("a number in [", kMinSeconds, ", ", max, "]");
    return envError(name, *raw, zero_unsets ? absl::StrCat("0 (unset) or ", range) : range);
  }
  return value;
}

// The value reaches haproxy.cfg as `balance <value>`, so only HAProxy's spellings pass.
bool isBalanceAlgorithm(const std::string& value) {
  if (value == "leastconn" || value == "roundrobin" || value == "first" || value == "random") {
    return true;
  }
  constexpr std::string_view kRandom = "random(";
  if (!value.starts_with(kRandom) || !value.ends_with(")")) {
    return false;
  }
  const std::string draws = value.substr(kRandom.size(), value.size() - kRandom.size() - 1);
  std::optional<std::int64_t> n = parseInteger(draws);
  // Canonical digits only: no sign, no leading zeros.
  return n.has_value() && *n >= 1 && *n <= 100 && absl::StrCat(*n) == draws;
}

// Characters that would end or comment out an haproxy.cfg token, or that a shell, a log line or
// a socket path would mangle.
bool isSafePathChar(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte > 0x20 && byte != 0x7f && c != '"' && c != '\'' && c != '#' && c != '\\';
}

constexpr char kPathRule[] =
    "a non-empty path without whitespace, quotes, '#', '\\' or control characters";

Status checkPath(const char* name, const std::string& value) {
  if (value.empty()) {
    return envError(name, value, kPathRule);
  }
  for (char c : value) {
    if (!isSafePathChar(c)) {
      return envError(name, value, kPathRule);
    }
  }
  return absl::OkStatus();
}

// A path that names a file: HAProxy creates the socket, the manager writes the config.
Status checkFilePath(const char* name, const std::string& value) {
  if (Status status = checkPath(name, value); !status.ok()) {
    return status;
  }
  if (value.back() == '/') {
    return envError(name, value, "a file path, not a directory (no trailing '/')");
  }
  return absl::OkStatus();
}

Status checkSocketPath(const std::string& value) {
  if (Status status = checkFilePath(kSocketPath, value); !status.ok()) {
    return status;
  }
  if (value.size() > kMaxSocketPathBytes) {
    return envError(kSocketPath, value,
                    absl::StrCat("a path of at most ", kMaxSocketPathBytes,
                                 " bytes (the limit of a unix socket path)"));
  }
  if (masterSocketPath(value) == value) {
    return envError(kSocketPath, value,
                    absl::StrCat("a file name other than ", kMasterSocketName,
                                 " (the master CLI socket beside it)"));
  }
  if (masterSocketPath(value).size() > kMaxSocketPathBytes) {
    return envError(
        kSocketPath, value,
        absl::StrCat("a directory short enough for ", kMasterSocketName, " beside it to fit in ",
                     kMaxSocketPathBytes, " bytes (the limit of a unix socket path)"));
  }
  return absl::OkStatus();
}

// Reads a path; unset keeps the default, and where `empty_is_default` an empty value does too
// (Ray writes "" for "not set").
std::string pathSetting(const EnvLookup& env, const char* name, std::string fallback,
                        bool empty_is_default) {
  std::optional<std::string> raw = env(name);
  if (!raw.has_value() || (empty_is_default && raw->empty())) {
    return fallback;
  }
  return *std::move(raw);
}

struct Port {
  const char* name;
  Setting<int> setting;
};

// The three listeners HAProxy and the manager own must differ. Blames the later variable of a
// clashing pair when it was set, else the earlier one (the defaults differ, so one was set).
Status checkDistinctPorts(const Port (&ports)[3]) {
  for (std::size_t later = 1; later < 3; ++later) {
    for (std::size_t earlier = 0; earlier < later; ++earlier) {
      const Port& a = ports[earlier];
      const Port& b = ports[later];
      if (a.setting.value != b.setting.value) {
        continue;
      }
      const Port& blamed = b.setting.raw.has_value() ? b : a;
      const Port& other = &blamed == &b ? a : b;
      return envError(
          blamed.name, *blamed.setting.raw,
          absl::StrCat("a port other than ", other.name, " (", other.setting.value, ")"));
    }
  }
  return absl::OkStatus();
}

bool isLoopback(const std::string& address) {
  in_addr v4{};
  if (inet_pton(AF_INET, address.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;  // 127.0.0.0/8
  }
  in6_addr v6{};
  return inet_pton(AF_INET6, address.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

// "user:password" as HAProxy's `stats auth` takes it, unquoted: no byte of it may end the word
// or start a comment in haproxy.cfg, so only printable ASCII other than space, '#', quotes and
// backslash; a user name of letters, digits, '.', '_' and '-'; a password of 8 or more.
bool isStatsAuth(const std::string& auth) {
  const std::size_t colon = auth.find(':');
  if (colon == std::string::npos || colon == 0 || colon > 64 || auth.size() - colon - 1 < 8 ||
      auth.size() > 200) {
    return false;
  }
  for (std::size_t i = 0; i < auth.size(); ++i) {
    const auto c = static_cast<unsigned char>(auth[i]);
    if (i < colon && !(std::isalnum(c) || c == '.' || c == '_' || c == '-')) {
      return false;
    }
    if (c <= 0x20 || c >= 0x7f || c == '#' || c == '"' || c == '\'' || c == '\\') {
      return false;
    }
  }
  return true;
}

// Where the stats page listens, and its credentials: required off loopback.
Status readStatsAccess(const EnvLookup& env, ManagerEnv& result) {
  if (std::optional<std::string> bind = env(kStatsBind); bind.has_value() && !bind->empty()) {
    in6_addr any{};
    if (inet_pton(AF_INET, bind->c_str(), &any) != 1 &&
        inet_pton(AF_INET6, bind->c_str(), &any) != 1) {
      return envError(kStatsBind, *bind, "an IPv4 or IPv6 address (127.0.0.1 by default)");
    }
    result.stats_bind = *bind;
  }
  if (std::optional<std::string> auth = env(kStatsAuth); auth.has_value() && !auth->empty()) {
    if (!isStatsAuth(*auth)) {
      // The value is a password: the message does not repeat it.
      return absl::InvalidArgumentError(absl::StrCat(
          kStatsAuth,
          " must be <user>:<password>: a user of letters, digits, '.', '_' or '-', "
          "and a password of at least 8 printable characters without spaces, '#', quotes or "
          "backslashes"));
    }
    result.stats_auth = *auth;
  }
  if (!isLoopback(result.stats_bind) && result.stats_auth.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kStatsBind, "=", result.stats_bind,
                     ": the stats page shows every server's address and "
                     "state; off loopback it needs credentials: set ",
                     kStatsAuth, "=<user>:<password>"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string masterSocketPath(const std::string& socket_path) {
  const std::size_t slash = socket_path.rfind('/');
  if (slash == std::string::npos) {
    return kMasterSocketName;
  }
  return absl::StrCat(socket_path.substr(0, slash + 1), kMasterSocketName);
}

std::vector<EnvRange> plainEnvRanges() {
  std::vector<EnvRange> out;
  for (const IntVar& var : kIntVars) {
    out.push_back({var.name, static_cast<double>(var.min), static_cast<double>(var.max)});
  }
  for (const SecondsVar& var : kSecondsVars) {
    out.push_back({var.name, var.min, var.max});
  }
  return out;
}

StatusOr<ManagerEnv> readManagerEnv(const EnvLookup& env) {
  ManagerEnv result;

  for (const IntVar& var : kIntVars) {
    StatusOr<Setting<int>> value = intSetting(env, var.name, result.*var.field, var.min, var.max);
    if (!value.ok()) {
      return value.status();
    }
    result.*var.field = value->value;
  }
  for (const SecondsVar& var : kSecondsVars) {
    StatusOr<double> value = numberSetting(env, var.name, result.*var.field, var.min, var.max);
    if (!value.ok()) {
      return value.status();
    }
    result.*var.field = *value;
  }
  for (const SecondsVar& var : kDurationVars) {
    StatusOr<double> value = durationSetting(env, var.name, result.*var.field, var.min, var.max);
    if (!value.ok()) {
      return value.status();
    }
    result.*var.field = *value;
  }

  StatusOr<std::optional<double>> timeout_server =
      optionalSeconds(env, kTimeoutServer, 86400, /*zero_unsets=*/false);
  if (!timeout_server.ok()) {
    return timeout_server.status();
  }
  result.timeout_server_s = *timeout_server;
  StatusOr<std::optional<double>> timeout_connect =
      optionalSeconds(env, kTimeoutConnect, 3600, /*zero_unsets=*/true);
  if (!timeout_connect.ok()) {
    return timeout_connect.status();
  }
  result.timeout_connect_s = *timeout_connect;
  // Ray's default is 0: "take http_options.keep_alive_timeout_s". Set, it replaces that key, so
  // it takes the key's upper bound.
  StatusOr<std::optional<double>> keep_alive =
      optionalSeconds(env, kKeepAlive, keys::configKey("http_options.keep_alive_timeout_s").max,
                      /*zero_unsets=*/true);
  if (!keep_alive.ok()) {
    return keep_alive.status();
  }
  result.keep_alive_timeout_s = *keep_alive;
  StatusOr<Setting<int>> retries = intSetting(env, kRetries, 0, 0, 100);
  if (!retries.ok()) {
    return retries.status();
  }
  if (retries->raw.has_value()) {
    result.retries = retries->value;
  }

  if (std::optional<std::string> balance = env(kBalance); balance.has_value()) {
    if (!isBalanceAlgorithm(*balance)) {
      return envError(kBalance, *balance,
                      "one of leastconn, roundrobin, first, random, random(<draws>) with draws "
                      "in [1, 100]");
    }
    result.balance_algorithm = *balance;
  }
  StatusOr<bool> observe =
      boolSetting(env, "RAY_SERVE_HAPROXY_OBSERVE_MARK_DOWN_ENABLED", result.observe_mark_down);
  if (!observe.ok()) {
    return observe.status();
  }
  result.observe_mark_down = *observe;

  Port ports[3] = {{kMetricsPort, {result.metrics_port, std::nullopt}},
                   {kStatsPort, {result.stats_port, std::nullopt}},
                   {kControlPort, {result.control_port, std::nullopt}}};
  for (Port& port : ports) {
    StatusOr<Setting<int>> value = intSetting(env, port.name, port.setting.value, 1, 65535);
    if (!value.ok()) {
      return value.status();
    }
    port.setting = *std::move(value);
  }
  if (Status status = checkDistinctPorts(ports); !status.ok()) {
    return status;
  }
  result.metrics_port = ports[0].setting.value;
  result.stats_port = ports[1].setting.value;
  result.control_port = ports[2].setting.value;
  if (Status status = readStatsAccess(env, result); !status.ok()) {
    return status;
  }

  // The binary is exec'd, never written into haproxy.cfg: any path will do but one with
  // control characters, which is a mistake wherever it comes from.
  const std::string binary = pathSetting(env, kBinaryPath, "", /*empty_is_default=*/true);
  for (char c : binary) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      return envError(kBinaryPath, binary, "a path without control characters");
    }
  }
  result.haproxy_binary = binary;

  const std::string socket =
      pathSetting(env, kSocketPath, result.socket_path, /*empty_is_default=*/false);
  if (Status status = checkSocketPath(socket); !status.ok()) {
    return status;
  }
  result.socket_path = socket;
  const std::string config =
      pathSetting(env, kConfigFile, result.config_file, /*empty_is_default=*/false);
  if (Status status = checkFilePath(kConfigFile, config); !status.ok()) {
    return status;
  }
  result.config_file = config;
  const std::string templates =
      pathSetting(env, kTemplateDir, result.template_dir, /*empty_is_default=*/true);
  if (!templates.empty()) {
    if (Status status = checkPath(kTemplateDir, templates); !status.ok()) {
      return status;
    }
  }
  result.template_dir = templates;

  StatusOr<bool> metrics_enabled =
      boolSetting(env, "RAY_SERVE_HAPROXY_METRICS_ENABLED", result.metrics_enabled);
  if (!metrics_enabled.ok()) {
    return metrics_enabled.status();
  }
  result.metrics_enabled = *metrics_enabled;
  const std::size_t slash = result.socket_path.rfind('/');
  const std::string default_metrics_socket =
      (slash == std::string::npos ? std::string() : result.socket_path.substr(0, slash + 1)) +
      "access.sock";  // as long as master.sock, so whatever fits for one fits
  constexpr char kMetricsSocket[] = "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH";
  const std::string metrics_socket =
      pathSetting(env, kMetricsSocket, default_metrics_socket, /*empty_is_default=*/true);
  if (Status status = checkPath(kMetricsSocket, metrics_socket); !status.ok()) {
    return status;
  }
  if (metrics_socket.size() > kMaxSocketPathBytes) {
    return envError(kMetricsSocket, metrics_socket,
                    absl::StrCat("a path of at most ", kMaxSocketPathBytes,
                                 " bytes (the limit of a unix socket path)"));
  }
  if (metrics_socket == result.socket_path ||
      metrics_socket == masterSocketPath(result.socket_path)) {
    return envError(kMetricsSocket, metrics_socket,
                    "a path other than the admin and master sockets");
  }
  result.metrics_socket_path = metrics_socket;

  // Logging reads the same variables as the replica, with the same defaults.
  StatusOr<bool> throughput = boolSetting(env, kThroughputOptimized, false);
  if (!throughput.ok()) {
    return throughput.status();
  }
  StatusOr<bool> to_stderr = boolSetting(env, kLogToStderr, !*throughput);
  if (!to_stderr.ok()) {
    return to_stderr.status();
  }
  result.log_to_stderr = *to_stderr;
  const std::string log_dir = pathSetting(env, kLogDir, result.log_dir, /*empty_is_default=*/false);
  if (Status status = checkPath(kLogDir, log_dir); !status.ok()) {
    return status;
  }
  result.log_dir = log_dir;
  return result;
}

}  // namespace serve::manager
