#include "haproxy-manager/model/manager_env.h"

#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/config_keys.h"
#include "tests/support/env_lookup.h"

namespace serve::manager {
namespace {

using serve::testing::envFrom;
using serve::testing::Vars;

ManagerEnv readOk(const Vars& vars) {
  StatusOr<ManagerEnv> env = readManagerEnv(envFrom(vars));
  REQUIRE_MESSAGE(env.ok(), env.status().message());
  return *env;
}

std::string errorOf(const Vars& vars) {
  StatusOr<ManagerEnv> env = readManagerEnv(envFrom(vars));
  REQUIRE_FALSE(env.ok());
  CHECK(env.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(env.status().message());
}

TEST_CASE("readManagerEnv uses the documented defaults when nothing is set") {
  const ManagerEnv env = readOk({});
  CHECK(env.haproxy_binary.empty());
  CHECK(env.socket_path == "/tmp/haproxy-serve/admin.sock");
  CHECK(env.config_file == "/tmp/haproxy-serve/haproxy.cfg");
  CHECK(env.template_dir.empty());
  CHECK(env.maxconn == 20000);
  CHECK(env.nbthread == 4);
  CHECK(env.hard_stop_after_s == 120);
  CHECK(env.timeout_client_s == 3600);
  CHECK_FALSE(env.timeout_server_s.has_value());
  CHECK_FALSE(env.timeout_connect_s.has_value());
  CHECK_FALSE(env.keep_alive_timeout_s.has_value());
  CHECK_FALSE(env.retries.has_value());
  CHECK(env.balance_algorithm == "leastconn");
  CHECK(env.health_check_fall == 2);
  CHECK(env.health_check_rise == 2);
  CHECK(env.health_check_inter_s == 5);
  CHECK(env.health_check_fastinter_s == 0.25);
  CHECK(env.health_check_downinter_s == 0.25);
  CHECK(env.observe_mark_down);
  CHECK(env.observe_error_limit == 3);
  CHECK(env.min_server_slots == 16);
  CHECK(env.metrics_port == 9101);
  CHECK(env.stats_port == 8404);
  CHECK(env.control_port == 8405);
  CHECK(env.control_loop_interval_s == 0.1);
  CHECK(env.broadcast_coalesce_s == 0.1);
  CHECK(env.startup_timeout_s == 30);
  CHECK(env.node_draining_period_s == 30);
  CHECK(env.log_dir == "logs/serve");
  CHECK(env.log_to_stderr);
}

TEST_CASE("readManagerEnv reads every variable") {
  const ManagerEnv env = readOk({
      {"RAY_SERVE_HAPROXY_BINARY_PATH", "/opt/My Apps/haproxy"},
      {"RAY_SERVE_HAPROXY_SOCKET_PATH", "run/admin.sock"},
      {"RAY_SERVE_HAPROXY_CONFIG_FILE_LOC", "/var/lib/serve/haproxy.cfg"},
      {"RAY_SERVE_HAPROXY_TEMPLATE_DIR", "/etc/serve/templates"},
      {"RAY_SERVE_HAPROXY_MAXCONN", "10000000"},
      {"RAY_SERVE_HAPROXY_NBTHREAD", "256"},
      {"RAY_SERVE_HAPROXY_HARD_STOP_AFTER_S", "86400"},
      {"RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S", "0.001"},
      {"RAY_SERVE_HAPROXY_TIMEOUT_SERVER_S", "31"},
      {"RAY_SERVE_HAPROXY_TIMEOUT_CONNECT_S", "5"},
      {"RAY_SERVE_HTTP_KEEP_ALIVE_TIMEOUT_S", "75.5"},
      {"RAY_SERVE_HAPROXY_RETRIES", "0"},
      {"RAY_SERVE_HAPROXY_BALANCE_ALGORITHM", "random(2)"},
      {"RAY_SERVE_HAPROXY_HEALTH_CHECK_FALL", "1"},
      {"RAY_SERVE_HAPROXY_HEALTH_CHECK_RISE", "100"},
      {"RAY_SERVE_HAPROXY_HEALTH_CHECK_INTER", "2s"},
      {"RAY_SERVE_HAPROXY_HEALTH_CHECK_FASTINTER", "100ms"},
      {"RAY_SERVE_HAPROXY_HEALTH_CHECK_DOWNINTER", "1.5"},
      {"RAY_SERVE_HAPROXY_OBSERVE_MARK_DOWN_ENABLED", "0"},
      {"RAY_SERVE_HAPROXY_OBSERVE_ERROR_LIMIT", "10"},
      {"RAY_SERVE_HAPROXY_MIN_SERVER_SLOTS", "4096"},
      {"RAY_SERVE_HAPROXY_METRICS_PORT", "1"},
      {"RAY_SERVE_HAPROXY_STATS_PORT", "65535"},
      {"RAY_SERVE_HAPROXY_CONTROL_PORT", "18405"},
      {"RAY_SERVE_CONTROL_LOOP_INTERVAL_S", "0.01"},
      {"RAY_SERVE_HAPROXY_BROADCAST_COALESCE_S", "0"},
      {"RAY_SERVE_HAPROXY_STARTUP_TIMEOUT_S", "600"},
      {"RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S", "0"},
      {"RAY_SERVE_LOG_DIR", "/var/log/serve"},
      {"RAY_SERVE_LOG_TO_STDERR", "0"},
  });
  CHECK(env.haproxy_binary == "/opt/My Apps/haproxy");
  CHECK(env.socket_path == "run/admin.sock");
  CHECK(env.config_file == "/var/lib/serve/haproxy.cfg");
  CHECK(env.template_dir == "/etc/serve/templates");
  CHECK(env.maxconn == 10000000);
  CHECK(env.nbthread == 256);
  CHECK(env.hard_stop_after_s == 86400);
  CHECK(env.timeout_client_s == 0.001);
  CHECK(env.timeout_server_s == 31.0);
  CHECK(env.timeout_connect_s == 5.0);
  CHECK(env.keep_alive_timeout_s == 75.5);
  CHECK(env.retries == 0);
  CHECK(env.balance_algorithm == "random(2)");
  CHECK(env.health_check_fall == 1);
  CHECK(env.health_check_rise == 100);
  CHECK(env.health_check_inter_s == 2);
  CHECK(env.health_check_fastinter_s == 0.1);
  CHECK(env.health_check_downinter_s == 1.5);
  CHECK_FALSE(env.observe_mark_down);
  CHECK(env.observe_error_limit == 10);
  CHECK(env.min_server_slots == 4096);
  CHECK(env.metrics_port == 1);
  CHECK(env.stats_port == 65535);
  CHECK(env.control_port == 18405);
  CHECK(env.control_loop_interval_s == 0.01);
  CHECK(env.broadcast_coalesce_s == 0);
  CHECK(env.startup_timeout_s == 600);
  CHECK(env.node_draining_period_s == 0);
  CHECK(env.log_dir == "/var/log/serve");
  CHECK_FALSE(env.log_to_stderr);
}

TEST_CASE("health-check intervals take seconds, <n>s and <n>ms, as Ray writes them") {
  struct Case {
    std::string value;
    double seconds;
  };
  const std::vector<Case> cases = {
      {"5s", 5},      {"5", 5},        {"250ms", 0.25},     {"0.25", 0.25}, {"0.5s", 0.5},
      {"1ms", 0.001}, {"3600s", 3600}, {"3600000ms", 3600}, {"1e3ms", 1},
  };
  for (const std::string name :
       {"RAY_SERVE_HAPROXY_HEALTH_CHECK_INTER", "RAY_SERVE_HAPROXY_HEALTH_CHECK_FASTINTER",
        "RAY_SERVE_HAPROXY_HEALTH_CHECK_DOWNINTER"}) {
    for (const Case& c : cases) {
      CAPTURE(name);
      CAPTURE(c.value);
      const ManagerEnv env = readOk({{name, c.value}});
      const double parsed = name.ends_with("_INTER")      ? env.health_check_inter_s
                            : name.ends_with("FASTINTER") ? env.health_check_fastinter_s
                                                          : env.health_check_downinter_s;
      CHECK(parsed == doctest::Approx(c.seconds).epsilon(1e-12));
    }
  }
}

TEST_CASE("RAY_SERVE_HAPROXY_BALANCE_ALGORITHM takes HAProxy's spellings only") {
  for (const std::string algorithm :
       {"leastconn", "roundrobin", "first", "random", "random(1)", "random(2)", "random(100)"}) {
    CAPTURE(algorithm);
    CHECK(readOk({{"RAY_SERVE_HAPROXY_BALANCE_ALGORITHM", algorithm}}).balance_algorithm ==
          algorithm);
  }
  for (const std::string algorithm :
       {"", "static-rr", "source", "uri", "LEASTCONN", "leastconn ", " roundrobin", "random()",
        "random(0)", "random(101)", "random(02)", "random(+2)", "random(-1)", "random(2",
        "random 2", "random(2) ", "random(2)x", "leastconn\nbackend x", "roundrobin#"}) {
    CAPTURE(algorithm);
    CHECK(errorOf({{"RAY_SERVE_HAPROXY_BALANCE_ALGORITHM", algorithm}})
              .ends_with(": expected one of leastconn, roundrobin, first, random, random(<draws>) "
                         "with draws in "
                         "[1, 100]"));
  }
}

TEST_CASE("zero unsets the timeouts Ray reads 0 as disabled") {
  const ManagerEnv env = readOk(
      {{"RAY_SERVE_HAPROXY_TIMEOUT_CONNECT_S", "0"}, {"RAY_SERVE_HTTP_KEEP_ALIVE_TIMEOUT_S", "0"}});
  CHECK_FALSE(env.timeout_connect_s.has_value());
  CHECK_FALSE(env.keep_alive_timeout_s.has_value());
}

TEST_CASE("empty binary path and template dir mean the defaults, as in Ray") {
  const ManagerEnv env =
      readOk({{"RAY_SERVE_HAPROXY_BINARY_PATH", ""}, {"RAY_SERVE_HAPROXY_TEMPLATE_DIR", ""}});
  CHECK(env.haproxy_binary.empty());
  CHECK(env.template_dir.empty());
}

TEST_CASE("RAY_SERVE_THROUGHPUT_OPTIMIZED turns stderr logging off unless it is set") {
  CHECK_FALSE(readOk({{"RAY_SERVE_THROUGHPUT_OPTIMIZED", "1"}}).log_to_stderr);
  CHECK(readOk({{"RAY_SERVE_THROUGHPUT_OPTIMIZED", "1"}, {"RAY_SERVE_LOG_TO_STDERR", "1"}})
            .log_to_stderr);
  CHECK(readOk({{"RAY_SERVE_THROUGHPUT_OPTIMIZED", "0"}}).log_to_stderr);
}

TEST_CASE("the ingress log socket defaults to access.sock beside the admin socket") {
  CHECK(readOk({}).metrics_socket_path == "/tmp/haproxy-serve/access.sock");
  CHECK(readOk({}).metrics_enabled);
  CHECK(readOk({{"RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH", "/run/x.sock"},
                {"RAY_SERVE_HAPROXY_METRICS_ENABLED", "0"}})
            .metrics_socket_path == "/run/x.sock");
  CHECK(errorOf({{"RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH", "/tmp/haproxy-serve/admin.sock"}}) ==
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH=/tmp/haproxy-serve/admin.sock: expected a path "
        "other than the admin and master sockets");
}

TEST_CASE("masterSocketPath puts master.sock beside the admin socket") {
  CHECK(masterSocketPath("/tmp/haproxy-serve/admin.sock") == "/tmp/haproxy-serve/master.sock");
  CHECK(masterSocketPath("run/admin.sock") == "run/master.sock");
  CHECK(masterSocketPath("admin.sock") == "master.sock");
  CHECK(masterSocketPath("/admin.sock") == "/master.sock");
}

TEST_CASE("socket paths must fit a unix socket, master.sock included") {
  // 107 bytes is the most sun_path holds; the master socket beside it must fit too.
  const std::string dir95 = "/" + std::string(94, 'd');
  const std::string at_limit = dir95 + "/" + std::string(11, 'a');
  REQUIRE(at_limit.size() == 107);
  CHECK(readOk({{"RAY_SERVE_HAPROXY_SOCKET_PATH", at_limit}}).socket_path == at_limit);
  CHECK(masterSocketPath(at_limit).size() == 107);
  CHECK(readOk({{"RAY_SERVE_HAPROXY_SOCKET_PATH", at_limit}}).metrics_socket_path ==
        dir95 + "/access.sock");

  const std::string too_long = at_limit + "a";
  CHECK(errorOf({{"RAY_SERVE_HAPROXY_SOCKET_PATH", too_long}}) ==
        "RAY_SERVE_HAPROXY_SOCKET_PATH=" + too_long.substr(0, 80) +
            "...: expected a path of at most 107 bytes (the limit of a unix socket path)");

  const std::string dir96 = "/" + std::string(95, 'd');
  CHECK(errorOf({{"RAY_SERVE_HAPROXY_SOCKET_PATH", dir96 + "/a.sock"}}) ==
        "RAY_SERVE_HAPROXY_SOCKET_PATH=" + (dir96 + "/a.sock").substr(0, 80) +
            "...: expected a directory short enough for master.sock beside it to fit in 107 bytes "
            "(the limit of a unix socket path)");
}

TEST_CASE("readManagerEnv rejects bad values with the variable, value and rule") {
  constexpr char kPathRule[] =
      "expected a non-empty path without whitespace, quotes, '#', '\\' or control characters";
  constexpr char kIntervalRule[] =
      "expected a duration in [1ms, 3600s], written as seconds (5, 0.25) or with a unit (5s, "
      "250ms)";
  struct Case {
    Vars vars;
    std::string message;
  };
  const std::vector<Case> cases = {
      // Integers.
      {{{"RAY_SERVE_HAPROXY_MAXCONN", "0"}},
       "RAY_SERVE_HAPROXY_MAXCONN=0: expected an integer in [1, 10000000]"},
      {{{"RAY_SERVE_HAPROXY_MAXCONN", "10000001"}},
       "RAY_SERVE_HAPROXY_MAXCONN=10000001: expected an integer in [1, 10000000]"},
      {{{"RAY_SERVE_HAPROXY_NBTHREAD", "0"}},
       "RAY_SERVE_HAPROXY_NBTHREAD=0: expected an integer in [1, 256]"},
      {{{"RAY_SERVE_HAPROXY_NBTHREAD", "4.0"}},
       "RAY_SERVE_HAPROXY_NBTHREAD=4.0: expected an integer in [1, 256]"},
      {{{"RAY_SERVE_HAPROXY_NBTHREAD", ""}},
       "RAY_SERVE_HAPROXY_NBTHREAD=: expected an integer in [1, 256]"},
      {{{"RAY_SERVE_HAPROXY_HEALTH_CHECK_FALL", "0"}},
       "RAY_SERVE_HAPROXY_HEALTH_CHECK_FALL=0: expected an integer in [1, 100]"},
      {{{"RAY_SERVE_HAPROXY_HEALTH_CHECK_RISE", "101"}},
       "RAY_SERVE_HAPROXY_HEALTH_CHECK_RISE=101: expected an integer in [1, 100]"},
      {{{"RAY_SERVE_HAPROXY_OBSERVE_ERROR_LIMIT", "0"}},
       "RAY_SERVE_HAPROXY_OBSERVE_ERROR_LIMIT=0: expected an integer in [1, 100]"},
      {{{"RAY_SERVE_HAPROXY_MIN_SERVER_SLOTS", "4097"}},
       "RAY_SERVE_HAPROXY_MIN_SERVER_SLOTS=4097: expected an integer in [1, 4096]"},
      {{{"RAY_SERVE_HAPROXY_RETRIES", "-1"}},
       "RAY_SERVE_HAPROXY_RETRIES=-1: expected an integer in [0, 100]"},
      {{{"RAY_SERVE_HAPROXY_RETRIES", "three"}},
       "RAY_SERVE_HAPROXY_RETRIES=three: expected an integer in [0, 100]"},
      // Ports.
      {{{"RAY_SERVE_HAPROXY_METRICS_PORT", "0"}},
       "RAY_SERVE_HAPROXY_METRICS_PORT=0: expected an integer in [1, 65535]"},
      {{{"RAY_SERVE_HAPROXY_STATS_PORT", "65536"}},
       "RAY_SERVE_HAPROXY_STATS_PORT=65536: expected an integer in [1, 65535]"},
      {{{"RAY_SERVE_HAPROXY_CONTROL_PORT", "http"}},
       "RAY_SERVE_HAPROXY_CONTROL_PORT=http: expected an integer in [1, 65535]"},
      {{{"RAY_SERVE_HAPROXY_STATS_PORT", "9101"}},
       "RAY_SERVE_HAPROXY_STATS_PORT=9101: expected a port other than "
       "RAY_SERVE_HAPROXY_METRICS_PORT (9101)"},
      {{{"RAY_SERVE_HAPROXY_METRICS_PORT", "8404"}},
       "RAY_SERVE_HAPROXY_METRICS_PORT=8404: expected a port other than "
       "RAY_SERVE_HAPROXY_STATS_PORT (8404)"},
      {{{"RAY_SERVE_HAPROXY_CONTROL_PORT", "8404"}},
       "RAY_SERVE_HAPROXY_CONTROL_PORT=8404: expected a port other than "
       "RAY_SERVE_HAPROXY_STATS_PORT (8404)"},
      {{{"RAY_SERVE_HAPROXY_METRICS_PORT", "8405"}},
       "RAY_SERVE_HAPROXY_METRICS_PORT=8405: expected a port other than "
       "RAY_SERVE_HAPROXY_CONTROL_PORT (8405)"},
      {{{"RAY_SERVE_HAPROXY_METRICS_PORT", "7000"}, {"RAY_SERVE_HAPROXY_CONTROL_PORT", "7000"}},
       "RAY_SERVE_HAPROXY_CONTROL_PORT=7000: expected a port other than "
       "RAY_SERVE_HAPROXY_METRICS_PORT (7000)"},
      // Plain seconds: no unit suffix, ranges per variable.
      {{{"RAY_SERVE_HAPROXY_HARD_STOP_AFTER_S", "0.5"}},
       "RAY_SERVE_HAPROXY_HARD_STOP_AFTER_S=0.5: expected a number in [1, 86400]"},
      {{{"RAY_SERVE_HAPROXY_HARD_STOP_AFTER_S", "86401"}},
       "RAY_SERVE_HAPROXY_HARD_STOP_AFTER_S=86401: expected a number in [1, 86400]"},
      {{{"RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S", "0"}},
       "RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S=0: expected a number in [0.001, 86400]"},
      {{{"RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S", "30s"}},
       "RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S=30s: expected a number in [0.001, 86400]"},
      {{{"RAY_SERVE_CONTROL_LOOP_INTERVAL_S", "0.001"}},
       "RAY_SERVE_CONTROL_LOOP_INTERVAL_S=0.001: expected a number in [0.01, 60]"},
      {{{"RAY_SERVE_CONTROL_LOOP_INTERVAL_S", "61"}},
       "RAY_SERVE_CONTROL_LOOP_INTERVAL_S=61: expected a number in [0.01, 60]"},
      {{{"RAY_SERVE_HAPROXY_BROADCAST_COALESCE_S", "-0.1"}},
       "RAY_SERVE_HAPROXY_BROADCAST_COALESCE_S=-0.1: expected a number in [0, 60]"},
      {{{"RAY_SERVE_HAPROXY_BROADCAST_COALESCE_S", "nan"}},
       "RAY_SERVE_HAPROXY_BROADCAST_COALESCE_S=nan: expected a number in [0, 60]"},
      {{{"RAY_SERVE_HAPROXY_STARTUP_TIMEOUT_S", "601"}},
       "RAY_SERVE_HAPROXY_STARTUP_TIMEOUT_S=601: expected a number in [1, 600]"},
      {{{"RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S", "3601"}},
       "RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S=3601: expected a number in [0, 3600]"},
      // Optional timeouts.
      {{{"RAY_SERVE_HAPROXY_TIMEOUT_SERVER_S", "0"}},
       "RAY_SERVE_HAPROXY_TIMEOUT_SERVER_S=0: expected a number in [0.001, 86400]"},
      {{{"RAY_SERVE_HAPROXY_TIMEOUT_SERVER_S", "inf"}},
       "RAY_SERVE_HAPROXY_TIMEOUT_SERVER_S=inf: expected a number in [0.001, 86400]"},
      {{{"RAY_SERVE_HAPROXY_TIMEOUT_CONNECT_S", "-1"}},
       "RAY_SERVE_HAPROXY_TIMEOUT_CONNECT_S=-1: expected 0 (unset) or a number in [0.001, 3600]"},
      {{{"RAY_SERVE_HAPROXY_TIMEOUT_CONNECT_S", "5s"}},
       "RAY_SERVE_HAPROXY_TIMEOUT_CONNECT_S=5s: expected 0 (unset) or a number in [0.001, 3600]"},
      {{{"RAY_SERVE_HTTP_KEEP_ALIVE_TIMEOUT_S", "86401"}},
       "RAY_SERVE_HTTP_KEEP_ALIVE_TIMEOUT_S=86401: expected 0 (unset) or a number in [0.001, "
       "86400]"},
      // Health-check intervals.
      {{{"RAY_SERVE_HAPROXY_HEALTH_CHECK_INTER", "0"}},
       std::string("RAY_SERVE_HAPROXY_HEALTH_CHECK_INTER=0: ") + kIntervalRule},
      {{{"RAY_SERVE_HAPROXY_HEALTH_CHECK_INTER", "0.5ms"}},
       std::string("RAY_SERVE_HAPROXY_HEALTH_CHECK_INTER=0.5ms: ") + kIntervalRule},
      {{{"RAY_SERVE_HAPROXY_HEALTH_CHECK_INTER", "5 s"}},
       std::string("RAY_SERVE_HAPROXY_HEALTH_CHECK_INTER=5 s: ") + kIntervalRule},
      {{{"RAY_SERVE_HAPROXY_HEALTH_CHECK_INTER", "1m"}},
       std::string("RAY_SERVE_HAPROXY_HEALTH_CHECK_INTER=1m: ") + kIntervalRule},
      {{{"RAY_SERVE_HAPROXY_HEALTH_CHECK_FASTINTER", "3601s"}},
       std::string("RAY_SERVE_HAPROXY_HEALTH_CHECK_FASTINTER=3601s: ") + kIntervalRule},
      {{{"RAY_SERVE_HAPROXY_HEALTH_CHECK_DOWNINTER", "-250ms"}},
       std::string("RAY_SERVE_HAPROXY_HEALTH_CHECK_DOWNINTER=-250ms: ") + kIntervalRule},
      // Booleans.
      {{{"RAY_SERVE_HAPROXY_OBSERVE_MARK_DOWN_ENABLED", "true"}},
       "RAY_SERVE_HAPROXY_OBSERVE_MARK_DOWN_ENABLED=true: expected 0 or 1"},
      {{{"RAY_SERVE_LOG_TO_STDERR", "2"}}, "RAY_SERVE_LOG_TO_STDERR=2: expected 0 or 1"},
      {{{"RAY_SERVE_THROUGHPUT_OPTIMIZED", "yes"}},
       "RAY_SERVE_THROUGHPUT_OPTIMIZED=yes: expected 0 or 1"},
      // Balance algorithm.
      {{{"RAY_SERVE_HAPROXY_BALANCE_ALGORITHM", "random(0)"}},
       "RAY_SERVE_HAPROXY_BALANCE_ALGORITHM=random(0): expected one of leastconn, roundrobin, "
       "first, random, random(<draws>) with draws in [1, 100]"},
      // Paths.
      {{{"RAY_SERVE_HAPROXY_SOCKET_PATH", ""}},
       std::string("RAY_SERVE_HAPROXY_SOCKET_PATH=: ") + kPathRule},
      {{{"RAY_SERVE_HAPROXY_SOCKET_PATH", "/tmp/a b/admin.sock"}},
       std::string("RAY_SERVE_HAPROXY_SOCKET_PATH=/tmp/a b/admin.sock: ") + kPathRule},
      {{{"RAY_SERVE_HAPROXY_SOCKET_PATH", "/tmp/\"x\"/admin.sock"}},
       std::string("RAY_SERVE_HAPROXY_SOCKET_PATH=/tmp/\\\"x\\\"/admin.sock: ") + kPathRule},
      {{{"RAY_SERVE_HAPROXY_SOCKET_PATH", "/tmp/x/"}},
       "RAY_SERVE_HAPROXY_SOCKET_PATH=/tmp/x/: expected a file path, not a directory (no "
       "trailing '/')"},
      {{{"RAY_SERVE_HAPROXY_SOCKET_PATH", "/tmp/x/master.sock"}},
       "RAY_SERVE_HAPROXY_SOCKET_PATH=/tmp/x/master.sock: expected a file name other than "
       "master.sock (the master CLI socket beside it)"},
      {{{"RAY_SERVE_HAPROXY_CONFIG_FILE_LOC", ""}},
       std::string("RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=: ") + kPathRule},
      {{{"RAY_SERVE_HAPROXY_CONFIG_FILE_LOC", "/tmp/h#1/haproxy.cfg"}},
       std::string("RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=/tmp/h#1/haproxy.cfg: ") + kPathRule},
      {{{"RAY_SERVE_HAPROXY_CONFIG_FILE_LOC", "/tmp/x/"}},
       "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=/tmp/x/: expected a file path, not a directory (no "
       "trailing '/')"},
      {{{"RAY_SERVE_HAPROXY_TEMPLATE_DIR", "C:\\templates"}},
       std::string("RAY_SERVE_HAPROXY_TEMPLATE_DIR=C:\\\\templates: ") + kPathRule},
      {{{"RAY_SERVE_HAPROXY_TEMPLATE_DIR", "/etc/it's"}},
       std::string("RAY_SERVE_HAPROXY_TEMPLATE_DIR=/etc/it\\'s: ") + kPathRule},
      {{{"RAY_SERVE_LOG_DIR", ""}}, std::string("RAY_SERVE_LOG_DIR=: ") + kPathRule},
      {{{"RAY_SERVE_LOG_DIR", "logs\tserve"}},
       std::string("RAY_SERVE_LOG_DIR=logs\\tserve: ") + kPathRule},
      {{{"RAY_SERVE_LOG_DIR", "logs\nserve"}},
       std::string("RAY_SERVE_LOG_DIR=logs\\nserve: ") + kPathRule},
      {{{"RAY_SERVE_LOG_DIR", std::string("logs\x7f", 5)}},
       std::string("RAY_SERVE_LOG_DIR=logs\\x7f: ") + kPathRule},
      {{{"RAY_SERVE_HAPROXY_BINARY_PATH", "/usr/sbin/haproxy\n"}},
       "RAY_SERVE_HAPROXY_BINARY_PATH=/usr/sbin/haproxy\\n: expected a path without control "
       "characters"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.message);
    CHECK(errorOf(c.vars) == c.message);
  }
}

}  // namespace
}  // namespace serve::manager

namespace serve::manager {
namespace {

TEST_CASE("the stats page is on loopback unless bound elsewhere with credentials") {
  const ManagerEnv defaults = readOk({});
  CHECK(defaults.stats_bind == "127.0.0.1");
  CHECK(defaults.stats_auth.empty());

  struct Good {
    Vars vars;
    std::string bind;
    std::string auth;
  };
  const std::vector<Good> good = {
      {{{"RAY_SERVE_HAPROXY_STATS_BIND", "127.0.0.2"}}, "127.0.0.2", ""},
      {{{"RAY_SERVE_HAPROXY_STATS_BIND", "::1"}}, "::1", ""},
      {{{"RAY_SERVE_HAPROXY_STATS_AUTH", "ops:s3cret-pw!"}}, "127.0.0.1", "ops:s3cret-pw!"},
      {{{"RAY_SERVE_HAPROXY_STATS_BIND", "0.0.0.0"},
        {"RAY_SERVE_HAPROXY_STATS_AUTH", "ops.team_1:abcdefgh"}},
       "0.0.0.0",
       "ops.team_1:abcdefgh"},
  };
  for (const Good& g : good) {
    CAPTURE(g.bind);
    const ManagerEnv env = readOk(g.vars);
    CHECK(env.stats_bind == g.bind);
    CHECK(env.stats_auth == g.auth);
  }

  const std::string auth_rule =
      "RAY_SERVE_HAPROXY_STATS_AUTH must be <user>:<password>: a user of letters, digits, '.', "
      "'_' or '-', and a password of at least 8 printable characters without spaces, '#', "
      "quotes or backslashes";
  struct Bad {
    Vars vars;
    std::string message;
  };
  const std::vector<Bad> bad = {
      {{{"RAY_SERVE_HAPROXY_STATS_BIND", "0.0.0.0"}},
       "RAY_SERVE_HAPROXY_STATS_BIND=0.0.0.0: the stats page shows every server's address and "
       "state; off loopback it needs credentials: set "
       "RAY_SERVE_HAPROXY_STATS_AUTH=<user>:<password>"},
      {{{"RAY_SERVE_HAPROXY_STATS_BIND", "10.1.2.3"}},
       "RAY_SERVE_HAPROXY_STATS_BIND=10.1.2.3: the stats page shows every server's address and "
       "state; off loopback it needs credentials: set "
       "RAY_SERVE_HAPROXY_STATS_AUTH=<user>:<password>"},
      {{{"RAY_SERVE_HAPROXY_STATS_BIND", "stats.example.com"}},
       "RAY_SERVE_HAPROXY_STATS_BIND=stats.example.com: expected an IPv4 or IPv6 address "
       "(127.0.0.1 by default)"},
      {{{"RAY_SERVE_HAPROXY_STATS_AUTH", "nopassword"}}, auth_rule},
      {{{"RAY_SERVE_HAPROXY_STATS_AUTH", "ops:short"}}, auth_rule},
      {{{"RAY_SERVE_HAPROXY_STATS_AUTH", "ops:has space in it"}}, auth_rule},
      {{{"RAY_SERVE_HAPROXY_STATS_AUTH", "ops:pass#word1"}}, auth_rule},
      {{{"RAY_SERVE_HAPROXY_STATS_AUTH", "ops:pass\nword1\n  bind :1"}}, auth_rule},
      {{{"RAY_SERVE_HAPROXY_STATS_AUTH", "o ps:password1"}}, auth_rule},
  };
  for (const Bad& b : bad) {
    CAPTURE(b.message);
    CHECK(errorOf(b.vars) == b.message);
  }
}

TEST_CASE("docs/configuration.md shows the ranges readManagerEnv accepts") {
  // The manager's table: | variable | default | accepted | drives |.
  std::ifstream in(SERVE_SOURCE_DIR "/docs/configuration.md");
  REQUIRE(in.good());
  std::map<std::string, std::string> accepted;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("| `RAY_SERVE_") && !line.starts_with("| `SERVE_")) {
      continue;
    }
    std::vector<std::string> cells;
    std::size_t at = 1;
    while (at < line.size()) {
      const std::size_t next = line.find(" | ", at);
      cells.push_back(
          line.substr(at + 1, (next == std::string::npos ? line.size() - 2 : next) - at - 1));
      at = next == std::string::npos ? line.size() : next + 2;
    }
    if (cells.size() == 4) {
      accepted[cells[0]] = cells[2];
    }
  }
  const std::vector<EnvRange> ranges = plainEnvRanges();
  CHECK(ranges.size() == 12);
  for (const EnvRange& range : ranges) {
    CAPTURE(range.name);
    const auto it = accepted.find("`" + range.name + "`");
    REQUIRE(it != accepted.end());
    CHECK(it->second == keys::formatNumber(range.min) + "–" + keys::formatNumber(range.max));
  }
}

}  // namespace
}  // namespace serve::manager
