#include "common/env_settings.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <map>
#include <string>
#include <vector>

#include "tests/support/env_lookup.h"

namespace serve {
namespace {

using serve::testing::envFrom;
using serve::testing::Vars;

ReplicaEnv readOk(const Vars& vars) {
  StatusOr<ReplicaEnv> env = readReplicaEnv(envFrom(vars));
  REQUIRE_MESSAGE(env.ok(), env.status().message());
  return *env;
}

TEST_CASE("readReplicaEnv uses Ray's defaults when nothing is set") {
  const ReplicaEnv env = readOk({});
  CHECK(env.min_http_port == 30000);
  CHECK(env.max_http_port == 31000);
  CHECK(env.min_grpc_port == 40000);
  CHECK(env.max_grpc_port == 41000);
  CHECK(env.http_host == "127.0.0.1");
  CHECK(env.port_retry_count == 100);
  CHECK(env.min_draining_period_s == 30);
  CHECK(env.request_path_log_buffer_size == 1);
  CHECK(env.log_to_stderr);
  CHECK_FALSE(env.throughput_optimized);
  CHECK(env.log_dir == "logs/serve");
  CHECK(env.grpc_max_message_length == 4 * 1024 * 1024);
}

TEST_CASE("readReplicaEnv reads every variable") {
  const ReplicaEnv env = readOk({
      {"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "20000"},
      {"RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT", "20100"},
      {"RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT", "65000"},
      {"RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT", "65536"},
      {"RAY_SERVE_DEFAULT_HTTP_HOST", "0.0.0.0"},
      {"RAY_SERVE_DIRECT_INGRESS_PORT_RETRY_COUNT", "7"},
      {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "2.5"},
      {"RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE", "64"},
      {"RAY_SERVE_LOG_TO_STDERR", "0"},
      {"RAY_SERVE_THROUGHPUT_OPTIMIZED", "0"},
      {"RAY_SERVE_LOG_DIR", "/var/log/serve"},
      {"RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH", "16777216"},
  });
  CHECK(env.min_http_port == 20000);
  CHECK(env.max_http_port == 20100);
  CHECK(env.min_grpc_port == 65000);
  CHECK(env.max_grpc_port == 65536);
  CHECK(env.http_host == "0.0.0.0");
  CHECK(env.port_retry_count == 7);
  CHECK(env.min_draining_period_s == 2.5);
  CHECK(env.request_path_log_buffer_size == 64);
  CHECK_FALSE(env.log_to_stderr);
  CHECK_FALSE(env.throughput_optimized);
  CHECK(env.log_dir == "/var/log/serve");
  CHECK(env.grpc_max_message_length == 16777216);
}

TEST_CASE("RAY_SERVE_THROUGHPUT_OPTIMIZED changes defaults but not explicit values") {
  const ReplicaEnv tuned = readOk({{"RAY_SERVE_THROUGHPUT_OPTIMIZED", "1"}});
  CHECK(tuned.throughput_optimized);
  CHECK(tuned.request_path_log_buffer_size == 1000);
  CHECK_FALSE(tuned.log_to_stderr);

  const ReplicaEnv overridden = readOk({{"RAY_SERVE_THROUGHPUT_OPTIMIZED", "1"},
                                        {"RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE", "1"},
                                        {"RAY_SERVE_LOG_TO_STDERR", "1"}});
  CHECK(overridden.throughput_optimized);
  CHECK(overridden.request_path_log_buffer_size == 1);
  CHECK(overridden.log_to_stderr);
}

TEST_CASE("readReplicaEnv accepts boundary and address forms") {
  struct Case {
    std::string name;
    std::string value;
  };
  const std::vector<Case> cases = {
      {"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "1"},
      {"RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT", "65536"},
      {"RAY_SERVE_DEFAULT_HTTP_HOST", "::1"},
      {"RAY_SERVE_DEFAULT_HTTP_HOST", "::"},
      {"RAY_SERVE_DEFAULT_HTTP_HOST", "localhost"},
      {"RAY_SERVE_DEFAULT_HTTP_HOST", "10.1.2.3"},
      {"RAY_SERVE_DIRECT_INGRESS_PORT_RETRY_COUNT", "1"},
      {"RAY_SERVE_DIRECT_INGRESS_PORT_RETRY_COUNT", "10000"},
      {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "0"},
      {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "3600"},
      {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "1e3"},
      {"RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE", "1000000"},
      {"RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH", "1024"},
      {"RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH", "2147483647"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    CAPTURE(c.value);
    CHECK(readReplicaEnv(envFrom({{c.name, c.value}})).ok());
  }
  CHECK(readOk({{"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "1e3"}}).min_draining_period_s ==
        1000);
}

TEST_CASE("readReplicaEnv rejects bad values with the variable, value and rule") {
  struct Case {
    Vars vars;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "abc"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT=abc: expected an integer in [1, 65535]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", ""}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT=: expected an integer in [1, 65535]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "0"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT=0: expected an integer in [1, 65535]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "65536"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT=65536: expected an integer in [1, 65535]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "30000x"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT=30000x: expected an integer in [1, 65535]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", " 30000"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT= 30000: expected an integer in [1, 65535]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "+30000"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT=+30000: expected an integer in [1, 65535]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "30000.0"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT=30000.0: expected an integer in [1, 65535]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "99999999999999999999"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT=99999999999999999999: expected an integer in [1, "
       "65535]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT", "65537"}},
       "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT=65537: expected an integer in [1, 65536]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT", "-1"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT=-1: expected an integer in [1, 65535]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT", "0x100"}},
       "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT=0x100: expected an integer in [1, 65536]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "31000"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT=31000: expected a value below "
       "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT (31000)"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT", "29000"}},
       "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT=29000: expected a value above "
       "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT (30000)"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT", "42000"},
        {"RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT", "41000"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT=42000: expected a value below "
       "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT (41000)"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT", "30500"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT=30500: expected the HTTP port range [30000, 31000) "
       "and the gRPC port range [30500, 41000) not to overlap"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT", "40001"}},
       "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT=40001: expected the HTTP port range [30000, 40001) "
       "and the gRPC port range [40000, 41000) not to overlap"},
      {{{"RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH", "1023"}},
       "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH=1023: expected an integer in [1024, "
       "2147483647]"},
      {{{"RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH", "2147483648"}},
       "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH=2147483648: expected an integer in [1024, "
       "2147483647]"},
      {{{"RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH", "4MiB"}},
       "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH=4MiB: expected an integer in [1024, "
       "2147483647]"},
      {{{"RAY_SERVE_DEFAULT_HTTP_HOST", ""}},
       "RAY_SERVE_DEFAULT_HTTP_HOST=: expected an IPv4 or IPv6 address or \"localhost\""},
      {{{"RAY_SERVE_DEFAULT_HTTP_HOST", "example.com"}},
       "RAY_SERVE_DEFAULT_HTTP_HOST=example.com: expected an IPv4 or IPv6 address or "
       "\"localhost\""},
      {{{"RAY_SERVE_DEFAULT_HTTP_HOST", "[::1]"}},
       "RAY_SERVE_DEFAULT_HTTP_HOST=[::1]: expected an IPv4 or IPv6 address or \"localhost\""},
      {{{"RAY_SERVE_DEFAULT_HTTP_HOST", "127.0.0.1 "}},
       "RAY_SERVE_DEFAULT_HTTP_HOST=127.0.0.1 : expected an IPv4 or IPv6 address or "
       "\"localhost\""},
      {{{"RAY_SERVE_DEFAULT_HTTP_HOST", "256.0.0.1"}},
       "RAY_SERVE_DEFAULT_HTTP_HOST=256.0.0.1: expected an IPv4 or IPv6 address or "
       "\"localhost\""},
      {{{"RAY_SERVE_DIRECT_INGRESS_PORT_RETRY_COUNT", "0"}},
       "RAY_SERVE_DIRECT_INGRESS_PORT_RETRY_COUNT=0: expected an integer in [1, 10000]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_PORT_RETRY_COUNT", "10001"}},
       "RAY_SERVE_DIRECT_INGRESS_PORT_RETRY_COUNT=10001: expected an integer in [1, 10000]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "-1"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=-1: expected a number in [0, 3600]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "3600.5"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=3600.5: expected a number in [0, 3600]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "30s"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=30s: expected a number in [0, 3600]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "nan"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=nan: expected a number in [0, 3600]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "inf"}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=inf: expected a number in [0, 3600]"},
      {{{"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", ""}},
       "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=: expected a number in [0, 3600]"},
      {{{"RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE", "0"}},
       "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE=0: expected an integer in [1, 1000000]"},
      {{{"RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE", "1000001"}},
       "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE=1000001: expected an integer in [1, 1000000]"},
      {{{"RAY_SERVE_LOG_TO_STDERR", "true"}}, "RAY_SERVE_LOG_TO_STDERR=true: expected 0 or 1"},
      {{{"RAY_SERVE_LOG_TO_STDERR", "2"}}, "RAY_SERVE_LOG_TO_STDERR=2: expected 0 or 1"},
      {{{"RAY_SERVE_LOG_TO_STDERR", "a\nb"}}, "RAY_SERVE_LOG_TO_STDERR=a\\nb: expected 0 or 1"},
      {{{"RAY_SERVE_THROUGHPUT_OPTIMIZED", "yes"}},
       "RAY_SERVE_THROUGHPUT_OPTIMIZED=yes: expected 0 or 1"},
      {{{"RAY_SERVE_THROUGHPUT_OPTIMIZED", ""}},
       "RAY_SERVE_THROUGHPUT_OPTIMIZED=: expected 0 or 1"},
      {{{"RAY_SERVE_LOG_DIR", ""}}, "RAY_SERVE_LOG_DIR=: expected a non-empty directory path"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.message);
    StatusOr<ReplicaEnv> env = readReplicaEnv(envFrom(c.vars));
    REQUIRE_FALSE(env.ok());
    CHECK(env.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(env.status().message()) == c.message);
  }
}

TEST_CASE("processEnv reads the process environment") {
  constexpr char kName[] = "SERVE_ENV_SETTINGS_TEST_VARIABLE";
  const EnvLookup env = processEnv();
  unsetenv(kName);
  CHECK_FALSE(env(kName).has_value());
  setenv(kName, "", 1);
  CHECK(env(kName) == std::optional<std::string>(""));
  setenv(kName, "value", 1);
  CHECK(env(kName) == std::optional<std::string>("value"));
  unsetenv(kName);
}

}  // namespace
}  // namespace serve
