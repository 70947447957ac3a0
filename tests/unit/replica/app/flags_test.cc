#include "replica/app/flags.h"

#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "common/config_keys.h"

namespace serve {
namespace {

using Args = std::vector<std::string>;

Args withRequired(Args extra) {
  Args args = {"--config", "serve.yaml", "--app", "app1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

TEST_CASE("parseReplicaFlags: defaults with only the required flags") {
  StatusOr<ReplicaFlags> f = parseReplicaFlags({"--config", "serve.yaml", "--app", "app1"});
  REQUIRE(f.ok());
  CHECK_FALSE(f->help);
  CHECK(f->config_path == "serve.yaml");
  CHECK(f->app == "app1");
  CHECK(f->deployment == "");
  CHECK(f->http_port == 0);
  CHECK(f->grpc_port == 0);
  CHECK_FALSE(f->host.has_value());
  CHECK(f->port_file == "");
  CHECK(f->max_body_bytes == 16u * 1024 * 1024);
  CHECK(f->http_max_threads == 512);
  CHECK(f->max_connections == 1024);
  CHECK(f->request_read_timeout_s == 10.0);
  CHECK(f->watchdog_timeout_s == 30.0);
  CHECK_FALSE(f->draining_period_s.has_value());
  CHECK_FALSE(f->log_dir.has_value());
}

TEST_CASE("parseReplicaFlags: every flag, in both '--flag value' and '--flag=value' form") {
  struct Case {
    std::string flag;
    std::string value;
    std::function<void(const ReplicaFlags&)> check;
  };
  const std::vector<Case> cases = {
      {"--config", "/etc/x.yaml",
       [](const ReplicaFlags& f) { CHECK(f.config_path == "/etc/x.yaml"); }},
      {"--app", "other", [](const ReplicaFlags& f) { CHECK(f.app == "other"); }},
      {"--deployment", "d1", [](const ReplicaFlags& f) { CHECK(f.deployment == "d1"); }},
      {"--host", "0.0.0.0", [](const ReplicaFlags& f) { CHECK(f.host == "0.0.0.0"); }},
      {"--port-file", "/tmp/p", [](const ReplicaFlags& f) { CHECK(f.port_file == "/tmp/p"); }},
      {"--control-socket", "/run/c.sock",
       [](const ReplicaFlags& f) { CHECK(f.control_socket == "/run/c.sock"); }},
      {"--log-dir", "/var/log/s", [](const ReplicaFlags& f) { CHECK(f.log_dir == "/var/log/s"); }},
      {"--http-port", "8000", [](const ReplicaFlags& f) { CHECK(f.http_port == 8000); }},
      {"--http-port", "0", [](const ReplicaFlags& f) { CHECK(f.http_port == 0); }},
      {"--http-port", "65535", [](const ReplicaFlags& f) { CHECK(f.http_port == 65535); }},
      {"--http-port", "010", [](const ReplicaFlags& f) { CHECK(f.http_port == 10); }},
      {"--grpc-port", "40007", [](const ReplicaFlags& f) { CHECK(f.grpc_port == 40007); }},
      {"--grpc-port", "0", [](const ReplicaFlags& f) { CHECK(f.grpc_port == 0); }},
      {"--grpc-port", "none",
       [](const ReplicaFlags& f) { CHECK(f.grpc_port == ReplicaFlags::kNoGrpc); }},
      {"--max-body-bytes", "1", [](const ReplicaFlags& f) { CHECK(f.max_body_bytes == 1); }},
      {"--max-body-bytes", "1073741824",
       [](const ReplicaFlags& f) { CHECK(f.max_body_bytes == 1073741824u); }},
      {"--http-max-threads", "8", [](const ReplicaFlags& f) { CHECK(f.http_max_threads == 8); }},
      {"--http-max-threads", "16384",
       [](const ReplicaFlags& f) { CHECK(f.http_max_threads == 16384); }},
      {"--max-connections", "1", [](const ReplicaFlags& f) { CHECK(f.max_connections == 1); }},
      {"--max-connections", "1048576",
       [](const ReplicaFlags& f) { CHECK(f.max_connections == 1048576); }},
      {"--request-read-timeout-s", "0.1",
       [](const ReplicaFlags& f) { CHECK(f.request_read_timeout_s == 0.1); }},
      {"--request-read-timeout-s", "3600",
       [](const ReplicaFlags& f) { CHECK(f.request_read_timeout_s == 3600.0); }},
      {"--watchdog-timeout-s", "0",
       [](const ReplicaFlags& f) { CHECK(f.watchdog_timeout_s == 0.0); }},
      {"--watchdog-timeout-s", "2.5",
       [](const ReplicaFlags& f) { CHECK(f.watchdog_timeout_s == 2.5); }},
      {"--draining-period-s", "0",
       [](const ReplicaFlags& f) { CHECK(f.draining_period_s == 0.0); }},
      {"--draining-period-s", "3600",
       [](const ReplicaFlags& f) { CHECK(f.draining_period_s == 3600.0); }},
      {"--host", "a=b", [](const ReplicaFlags& f) { CHECK(f.host == "a=b"); }},
  };
  for (const Case& c : cases) {
    CAPTURE(c.flag);
    CAPTURE(c.value);
    for (const Args& extra : {Args{c.flag, c.value}, Args{c.flag + "=" + c.value}}) {
      CAPTURE(extra.size());
      StatusOr<ReplicaFlags> f = parseReplicaFlags(withRequired(extra));
      REQUIRE(f.ok());
      c.check(*f);
    }
  }
}

TEST_CASE("parseReplicaFlags: a repeated flag takes its last value, order does not matter") {
  StatusOr<ReplicaFlags> f =
      parseReplicaFlags({"--http-port=1", "--app", "a", "--http-port", "2", "--config=c"});
  REQUIRE(f.ok());
  CHECK(f->http_port == 2);
  CHECK(f->app == "a");
  CHECK(f->config_path == "c");
}

TEST_CASE("parseReplicaFlags: --help short-circuits everything after it") {
  const std::vector<Args> cases = {
      {"--help"},
      {"-h"},
      {"--help", "--config"},
      {"--help", "--bogus", "--http-port=70000"},
      {"--config", "c", "--help", "--app"},
  };
  for (const Args& args : cases) {
    CAPTURE(args.size());
    CAPTURE(args[0]);
    StatusOr<ReplicaFlags> f = parseReplicaFlags(args);
    REQUIRE(f.ok());
    CHECK(f->help);
  }
}

TEST_CASE("--help states each numeric flag's range and default as the key table has them") {
  const std::string usage = replicaUsage();
  for (const keys::Key& key : keys::kReplicaFlagKeys) {
    CAPTURE(key.name);
    // The flag's entry runs from its name to the next line that starts another option.
    const std::size_t at = usage.find("  " + std::string(key.name) + " ");
    REQUIRE(at != std::string::npos);
    const std::size_t next = usage.find("\n  -", at);
    const std::string entry = usage.substr(at, next == std::string::npos ? next : next - at);
    CAPTURE(entry);
    CHECK(entry.find(keys::ruleText(key) + " (default " + keys::defaultText(key) + ")") !=
          std::string::npos);
  }
}

TEST_CASE("parseReplicaFlags rejects bad command lines with the flag and rule in the message") {
  struct Case {
    Args args;
    std::string message;
  };
  const std::vector<Case> cases = {
      // Required flags.
      {{}, "--config is required (see --help)"},
      {{"--app", "a"}, "--config is required (see --help)"},
      {{"--config", "c"}, "--app is required (see --help)"},
      // Unknown flags and missing values.
      {withRequired({"--bogus"}), "unknown flag '--bogus' (see --help)"},
      {withRequired({"--bogus=1"}), "unknown flag '--bogus' (see --help)"},
      {withRequired({"serve.yaml"}), "unexpected argument 'serve.yaml' (see --help)"},
      {withRequired({"-c"}), "unknown flag '-c' (see --help)"},
      {withRequired({"--HTTP-PORT=1"}), "unknown flag '--HTTP-PORT' (see --help)"},
      {{"--config"}, "--config: missing value (see --help)"},
      {withRequired({"--http-port"}), "--http-port: missing value (see --help)"},
      // Empty strings.
      {{"--config=", "--app", "a"}, "--config: expected a non-empty value (see --help)"},
      {withRequired({"--app", ""}), "--app: expected a non-empty value (see --help)"},
      {withRequired({"--deployment="}), "--deployment: expected a non-empty value (see --help)"},
      {withRequired({"--host="}), "--host: expected a non-empty value (see --help)"},
      {withRequired({"--port-file="}), "--port-file: expected a non-empty value (see --help)"},
      {withRequired({"--log-dir="}), "--log-dir: expected a non-empty value (see --help)"},
      // Integers.
      {withRequired({"--http-port=70000"}),
       "--http-port: expected an integer in [0, 65535], got '70000' (see --help)"},
      {withRequired({"--http-port", "70000"}),
       "--http-port: expected an integer in [0, 65535], got '70000' (see --help)"},
      {withRequired({"--http-port=-1"}),
       "--http-port: expected an integer in [0, 65535], got '-1' (see --help)"},
      {withRequired({"--grpc-port=-1"}),
       "--grpc-port: expected an integer in [0, 65535] or \"none\", got '-1' (see --help)"},
      {withRequired({"--grpc-port=None"}),
       "--grpc-port: expected an integer in [0, 65535] or \"none\", got 'None' (see --help)"},
      {withRequired({"--grpc-port"}), "--grpc-port: missing value (see --help)"},
      {withRequired({"--http-port=80x"}),
       "--http-port: expected an integer in [0, 65535], got '80x' (see --help)"},
      {withRequired({"--http-port= 80"}),
       "--http-port: expected an integer in [0, 65535], got ' 80' (see --help)"},
      {withRequired({"--http-port=8.0"}),
       "--http-port: expected an integer in [0, 65535], got '8.0' (see --help)"},
      {withRequired({"--http-port="}),
       "--http-port: expected an integer in [0, 65535], got '' (see --help)"},
      {withRequired({"--http-port=99999999999999999999"}),
       "--http-port: expected an integer in [0, 65535], got '99999999999999999999' (see --help)"},
      {withRequired({"--max-body-bytes=0"}),
       "--max-body-bytes: expected an integer in [1, 1073741824], got '0' (see --help)"},
      {withRequired({"--max-body-bytes=1073741825"}),
       "--max-body-bytes: expected an integer in [1, 1073741824], got '1073741825' (see --help)"},
      {withRequired({"--http-max-threads=7"}),
       "--http-max-threads: expected an integer in [8, 16384], got '7' (see --help)"},
      {withRequired({"--http-max-threads=16385"}),
       "--http-max-threads: expected an integer in [8, 16384], got '16385' (see --help)"},
      {withRequired({"--max-connections=0"}),
       "--max-connections: expected an integer in [1, 1048576], got '0' (see --help)"},
      {withRequired({"--max-connections=1048577"}),
       "--max-connections: expected an integer in [1, 1048576], got '1048577' (see --help)"},
      // Numbers.
      {withRequired({"--request-read-timeout-s=0.05"}),
       "--request-read-timeout-s: expected a number in [0.1, 3600], got '0.05' (see --help)"},
      {withRequired({"--request-read-timeout-s=3600.5"}),
       "--request-read-timeout-s: expected a number in [0.1, 3600], got '3600.5' (see --help)"},
      {withRequired({"--request-read-timeout-s=ten"}),
       "--request-read-timeout-s: expected a number in [0.1, 3600], got 'ten' (see --help)"},
      {withRequired({"--watchdog-timeout-s=-1"}),
       "--watchdog-timeout-s: expected a number in [0, 86400] (0 = off), got '-1' (see --help)"},
      {withRequired({"--watchdog-timeout-s=86401"}),
       "--watchdog-timeout-s: expected a number in [0, 86400] (0 = off), got '86401' (see --help)"},
      {withRequired({"--watchdog-timeout-s=nan"}),
       "--watchdog-timeout-s: expected a number in [0, 86400] (0 = off), got 'nan' (see --help)"},
      {withRequired({"--watchdog-timeout-s=inf"}),
       "--watchdog-timeout-s: expected a number in [0, 86400] (0 = off), got 'inf' (see --help)"},
      {withRequired({"--watchdog-timeout-s=1s"}),
       "--watchdog-timeout-s: expected a number in [0, 86400] (0 = off), got '1s' (see --help)"},
      {withRequired({"--draining-period-s=3601"}),
       "--draining-period-s: expected a number in [0, 3600], got '3601' (see --help)"},
      {withRequired({"--draining-period-s=-0.5"}),
       "--draining-period-s: expected a number in [0, 3600], got '-0.5' (see --help)"},
      // The first error wins, even over a --help that comes after it.
      {withRequired({"--http-port=70000", "--bogus"}),
       "--http-port: expected an integer in [0, 65535], got '70000' (see --help)"},
      {withRequired({"--bogus", "--http-port=70000"}), "unknown flag '--bogus' (see --help)"},
      {{"--bogus"}, "unknown flag '--bogus' (see --help)"},
      {{"--bogus", "--help"}, "unknown flag '--bogus' (see --help)"},
  };
  for (const Case& c : cases) {
    std::string joined;
    for (const std::string& a : c.args) {
      joined += "[" + a + "]";
    }
    CAPTURE(joined);
    StatusOr<ReplicaFlags> f = parseReplicaFlags(c.args);
    REQUIRE_FALSE(f.ok());
    CHECK(f.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(f.status().message()) == c.message);
  }
}

TEST_CASE("replicaUsage names every flag parseReplicaFlags accepts") {
  const std::string usage = replicaUsage();
  for (const char* flag : {"--config", "--app", "--deployment", "--http-port", "--host",
                           "--port-file", "--control-socket", "--max-body-bytes",
                           "--http-max-threads", "--max-connections", "--request-read-timeout-s",
                           "--watchdog-timeout-s", "--draining-period-s", "--log-dir", "--help"}) {
    CAPTURE(flag);
    CHECK(usage.find(flag) != std::string::npos);
  }
}

}  // namespace
}  // namespace serve
