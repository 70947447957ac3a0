#include "common/serve_config.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace serve {
namespace {

// The architecture's example config, verbatim.
constexpr char kDesignExample[] =
    R"(http_options: {host: 0.0.0.0, port: 8000, request_timeout_s: 30, keep_alive_timeout_s: 90}
grpc_options: {port: 9000}
applications:
  - name: digits
    route_prefix: /digits
    deployments:
      - name: classifier
        num_replicas: 2
        max_ongoing_requests: 5
        max_queued_requests: -1
        graceful_shutdown_timeout_s: 20
        ray_actor_options: {num_cpus: 1, num_gpus: 0}
        model: {kind: mlp, path: models/digits.safetensors, name: digits}
        batching: {max_batch_size: 32, batch_wait_timeout_s: 0.002}
  - name: echo
    route_prefix: /echo
    deployments:
      - {name: noop, num_replicas: 1, model: {kind: noop, name: echo}}
)";

// One application with one deployment named "d"; the deployment's own keys start on line 6.
constexpr char kDeploymentHead[] = R"(applications:
  - name: app
    route_prefix: /app
    deployments:
      - name: d
)";

std::string withDeployment(const std::string& body) { return kDeploymentHead + body; }

// Options sections followed by a minimal valid application.
std::string withOptions(const std::string& options) {
  return options + R"(applications:
  - {name: app, route_prefix: /app, deployments: [{name: d, model: {kind: noop}}]}
)";
}

std::string errorOf(const std::string& yaml) {
  StatusOr<ServeConfig> config = parseServeConfig(yaml, "test.yaml");
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

struct ErrorCase {
  std::string name;
  std::string yaml;
  std::string message;
};

void checkErrors(const std::vector<ErrorCase>& cases) {
  for (const ErrorCase& c : cases) {
    CAPTURE(c.name);
    CAPTURE(c.yaml);
    CHECK(errorOf(c.yaml) == c.message);
  }
}

TEST_CASE("parseServeConfig reads the architecture's example config exactly") {
  StatusOr<ServeConfig> parsed = parseServeConfig(kDesignExample, "serve.yaml");
  REQUIRE_MESSAGE(parsed.ok(), parsed.status().message());
  const ServeConfig& config = *parsed;

  CHECK(config.source == "serve.yaml");
  CHECK(config.http_options.host == "0.0.0.0");
  CHECK(config.http_options.port == 8000);
  CHECK(config.http_options.request_timeout_s == 30);
  CHECK(config.http_options.keep_alive_timeout_s == 90);
  CHECK(config.grpc_options.port == 9000);
  REQUIRE(config.applications.size() == 2);

  const ApplicationSpec& digits = config.applications[0];
  CHECK(digits.name == "digits");
  CHECK(digits.route_prefix == "/digits");
  CHECK(digits.line == 4);
  REQUIRE(digits.deployments.size() == 1);
  const DeploymentSpec& classifier = digits.deployments[0];
  CHECK(classifier.name == "classifier");
  CHECK(classifier.line == 7);
  CHECK(classifier.num_replicas == 2);
  CHECK(classifier.max_ongoing_requests == 5);
  CHECK(classifier.max_queued_requests == -1);
  CHECK(classifier.graceful_shutdown_timeout_s == 20);
  CHECK(classifier.ray_actor_options.num_cpus == 1);
  CHECK(classifier.ray_actor_options.num_gpus == 0);
  CHECK(classifier.model.kind == "mlp");
  CHECK(classifier.model.path == "models/digits.safetensors");
  CHECK(classifier.model.name == "digits");
  CHECK(classifier.model.sleep_ms == 0);
  CHECK(classifier.batching.max_batch_size == 32);
  CHECK(classifier.batching.batch_wait_timeout_s == 0.002);

  const ApplicationSpec& echo = config.applications[1];
  CHECK(echo.name == "echo");
  CHECK(echo.route_prefix == "/echo");
  CHECK(echo.line == 15);
  REQUIRE(echo.deployments.size() == 1);
  const DeploymentSpec& noop = echo.deployments[0];
  CHECK(noop.name == "noop");
  CHECK(noop.line == 18);
  CHECK(noop.num_replicas == 1);
  CHECK(noop.model.kind == "noop");
  CHECK(noop.model.name == "echo");
  CHECK(noop.model.path.empty());

  CHECK(config.findApplication("echo") == &config.applications[1]);
  CHECK(config.findApplication("digits") == &config.applications[0]);
  CHECK(config.findApplication("missing") == nullptr);
}

TEST_CASE("parseServeConfig fills defaults for keys left out") {
  StatusOr<ServeConfig> parsed =
      parseServeConfig(withDeployment("        model: {kind: noop}\n"), "test.yaml");
  REQUIRE_MESSAGE(parsed.ok(), parsed.status().message());
  CHECK(parsed->http_options.host == "0.0.0.0");
  CHECK(parsed->http_options.port == 8000);
  CHECK(parsed->http_options.request_timeout_s == 0);
  CHECK(parsed->http_options.keep_alive_timeout_s == 90);
  CHECK(parsed->grpc_options.port == 9000);
  const DeploymentSpec& d = parsed->applications.at(0).deployments.at(0);
  CHECK(d.line == 5);
  CHECK(d.num_replicas == 1);
  CHECK(d.max_ongoing_requests == 5);
  CHECK(d.max_queued_requests == -1);
  CHECK(d.graceful_shutdown_timeout_s == 20);
  CHECK(d.ray_actor_options.num_cpus == 1);
  CHECK(d.ray_actor_options.num_gpus == 0);
  CHECK(d.model.name == "d");  // defaults to the deployment name
  CHECK(d.batching.max_batch_size == 1);
  CHECK(d.batching.batch_wait_timeout_s == 0);
  CHECK(d.batching.linger_fraction == 0.25);
}

TEST_CASE("parseServeConfig accepts the value forms YAML allows") {
  StatusOr<ServeConfig> parsed = parseServeConfig(
      R"(http_options:
  host: "::1"
  port: +8080
  request_timeout_s: 1.5e1
  keep_alive_timeout_s: .5
applications:
  - name: 2024
    route_prefix: "/"
    deployments:
      - name: 'slow.v1'
        max_queued_requests: 0
        graceful_shutdown_timeout_s: 0
        ray_actor_options: {num_cpus: 0.5, num_gpus: 1}
        model:
          kind: sleep
          sleep_ms: 2.5
        batching: {max_batch_size: 4096, batch_wait_timeout_s: 60, linger_fraction: 0}
)",
      "test.yaml");
  REQUIRE_MESSAGE(parsed.ok(), parsed.status().message());
  CHECK(parsed->http_options.host == "::1");
  CHECK(parsed->http_options.port == 8080);
  CHECK(parsed->http_options.request_timeout_s == 15);
  CHECK(parsed->http_options.keep_alive_timeout_s == 0.5);
  const ApplicationSpec& app = parsed->applications.at(0);
  CHECK(app.name == "2024");
  CHECK(app.route_prefix == "/");
  const DeploymentSpec& d = app.deployments.at(0);
  CHECK(d.name == "slow.v1");
  CHECK(d.max_queued_requests == 0);
  CHECK(d.graceful_shutdown_timeout_s == 0);
  CHECK(d.ray_actor_options.num_cpus == 0.5);
  CHECK(d.ray_actor_options.num_gpus == 1);
  CHECK(d.model.kind == "sleep");
  CHECK(d.model.name == "slow.v1");
  CHECK(d.model.sleep_ms == 2.5);
  CHECK(d.batching.max_batch_size == 4096);
  CHECK(d.batching.batch_wait_timeout_s == 60);
  CHECK(d.batching.linger_fraction == 0);
}

TEST_CASE("parseServeConfig accepts host names and addresses for http_options.host") {
  for (const std::string host :
       {"0.0.0.0", "127.0.0.1", "'::'", "localhost", "node-1.example.com"}) {
    CAPTURE(host);
    StatusOr<ServeConfig> parsed =
        parseServeConfig(withOptions("http_options: {host: " + host + "}\n"), "test.yaml");
    CHECK_MESSAGE(parsed.ok(), parsed.status().message());
  }
}

TEST_CASE("an unknown key names its file, line, path and the allowed keys") {
  const std::string yaml = R"(applications:
  - name: digits
    route_prefix: /digits
    deployments:
      - name: classifier
        num_replicas: 2
        max_ongoing: 5
        model: {kind: noop}
)";
  CHECK(errorOf(yaml) ==
        "test.yaml:7: applications[0].deployments[0].max_ongoing: unknown key (allowed: name, "
        "num_replicas, max_ongoing_requests, max_queued_requests, graceful_shutdown_timeout_s, "
        "ray_actor_options, model, batching, user_config, health_check_period_s, "
        "health_check_timeout_s)");
}

TEST_CASE("parseServeConfig rejects a bad document") {
  checkErrors({
      {"empty", "", "test.yaml:1: (top level): expected a mapping, got an empty document"},
      {"only a comment", "# nothing\n",
       "test.yaml:1: (top level): expected a mapping, got an empty document"},
      {"null document", "~\n", "test.yaml:1: (top level): expected a mapping, got an empty value"},
      {"list at top", "- a\n- b\n", "test.yaml:1: (top level): expected a mapping, got a list"},
      {"scalar at top", "hello\n",
       "test.yaml:1: (top level): expected a mapping, got the string \"hello\""},
      {"two documents", "applications: []\n---\napplications: []\n",
       "test.yaml:2: (top level): expected one YAML document, got more than one"},
      // yaml-cpp's LoadAll never returned on this (found by fuzz/serve_config_fuzz.cc).
      {"a stray comma", ",\n",
       "test.yaml:1: (top level): expected one YAML document, got more than one"},
      {"unterminated flow", "applications: [1\nb: 2\n",
       "test.yaml:2: YAML syntax error: end of sequence flow not found (column 2)"},
      {"tab indentation", "applications: 1\n\tb: 2\n",
       "test.yaml:2: YAML syntax error: illegal tab when looking for indentation (column 1)"},
      {"unknown top-level key", withOptions("proxy_location: EveryNode\n"),
       "test.yaml:1: proxy_location: unknown key (allowed: http_options, grpc_options, "
       "applications)"},
      {"non-string key", "[a, b]: 1\n",
       "test.yaml:1: (top level): expected keys to be strings, got a list as a key"},
      {"duplicate key", withOptions("grpc_options: {port: 9001}\ngrpc_options: {port: 9002}\n"),
       "test.yaml:2: grpc_options: duplicate key (first at line 1)"},
      {"applications missing", "http_options: {port: 8000}\n",
       "test.yaml:1: applications: required key is missing"},
      {"applications empty", "applications: []\n",
       "test.yaml:1: applications: expected a non-empty list of applications, got an empty list"},
      {"applications null", "applications:\n",
       "test.yaml:1: applications: expected a non-empty list of applications, got an empty value"},
      {"applications a mapping", "applications: {name: a}\n",
       "test.yaml:1: applications: expected a non-empty list of applications, got a mapping"},
  });
}

TEST_CASE("parseServeConfig: grpc_options.port 0 means no gRPC listener") {
  StatusOr<ServeConfig> config = parseServeConfig(withOptions("grpc_options: {port: 0}\n"), "t");
  REQUIRE_MESSAGE(config.ok(), messageOf(config.status()));
  CHECK(config->grpc_options.port == 0);
}

TEST_CASE("parseServeConfig checks http_options and grpc_options") {
  checkErrors({
      {"http_options not a mapping", withOptions("http_options: 8000\n"),
       "test.yaml:1: http_options: expected a mapping, got 8000"},
      {"http_options empty", withOptions("http_options:\n"),
       "test.yaml:1: http_options: expected a mapping, got an empty value"},
      {"http unknown key", withOptions("http_options: {root_path: /x}\n"),
       "test.yaml:1: http_options.root_path: unknown key (allowed: host, port, request_timeout_s, "
       "keep_alive_timeout_s)"},
      {"host with a space", withOptions("http_options: {host: 'my host'}\n"),
       "test.yaml:1: http_options.host: expected an IP address or a host name, got the string "
       "\"my host\""},
      {"host with a newline", withOptions("http_options: {host: \"a\\nb\"}\n"),
       "test.yaml:1: http_options.host: expected an IP address or a host name, got the string "
       "\"a\\nb\""},
      {"host empty", withOptions("http_options: {host: ''}\n"),
       "test.yaml:1: http_options.host: expected an IP address or a host name, got the string "
       "\"\""},
      {"host a boolean", withOptions("http_options: {host: true}\n"),
       "test.yaml:1: http_options.host: expected an IP address or a host name, got the boolean "
       "true"},
      {"http port 0", withOptions("http_options: {port: 0}\n"),
       "test.yaml:1: http_options.port: expected an integer in [1, 65535], got 0"},
      {"http port 65536", withOptions("http_options: {port: 65536}\n"),
       "test.yaml:1: http_options.port: expected an integer in [1, 65535], got 65536"},
      {"http port a quoted string", withOptions("http_options: {port: \"8000\"}\n"),
       "test.yaml:1: http_options.port: expected an integer in [1, 65535], got the string "
       "\"8000\""},
      {"http port a float", withOptions("http_options: {port: 8000.0}\n"),
       "test.yaml:1: http_options.port: expected an integer in [1, 65535], got 8000.0"},
      {"http port a word", withOptions("http_options:\n  port: http\n"),
       "test.yaml:2: http_options.port: expected an integer in [1, 65535], got the string "
       "\"http\""},
      {"http port huge", withOptions("http_options: {port: 99999999999999999999}\n"),
       "test.yaml:1: http_options.port: expected an integer in [1, 65535], got "
       "99999999999999999999"},
      {"request timeout negative", withOptions("http_options: {request_timeout_s: -1}\n"),
       "test.yaml:1: http_options.request_timeout_s: expected a number in [0, 86400] (0 = no "
       "timeout), "
       "got -1"},
      {"request timeout a boolean", withOptions("http_options: {request_timeout_s: false}\n"),
       "test.yaml:1: http_options.request_timeout_s: expected a number in [0, 86400] (0 = no "
       "timeout), "
       "got the boolean false"},
      {"request timeout infinite", withOptions("http_options: {request_timeout_s: .inf}\n"),
       "test.yaml:1: http_options.request_timeout_s: expected a number in [0, 86400] (0 = no "
       "timeout), "
       "got .inf"},
      {"request timeout overflows", withOptions("http_options: {request_timeout_s: 1e999}\n"),
       "test.yaml:1: http_options.request_timeout_s: expected a number in [0, 86400] (0 = no "
       "timeout), "
       "got 1e999"},
      // The probe's examples: finite but far past anything HAProxy or std::chrono can hold.
      {"request timeout 1e300", withOptions("http_options: {request_timeout_s: 1e300}\n"),
       "test.yaml:1: http_options.request_timeout_s: expected a number in [0, 86400] (0 = no "
       "timeout), got 1e300"},
      {"keep-alive 1e300", withOptions("http_options: {keep_alive_timeout_s: 1e300}\n"),
       "test.yaml:1: http_options.keep_alive_timeout_s: expected a number in (0, 86400], got "
       "1e300"},
      {"keep-alive zero", withOptions("http_options: {keep_alive_timeout_s: 0}\n"),
       "test.yaml:1: http_options.keep_alive_timeout_s: expected a number in (0, 86400], got 0"},
      {"grpc port 70000", withOptions("grpc_options: {port: 70000}\n"),
       "test.yaml:1: grpc_options.port: expected an integer in [0, 65535] (0 = no gRPC listener), "
       "got 70000"},
      {"grpc port negative", withOptions("grpc_options: {port: -1}\n"),
       "test.yaml:1: grpc_options.port: expected an integer in [0, 65535] (0 = no gRPC listener), "
       "got -1"},
      {"grpc unknown key", withOptions("grpc_options: {host: x}\n"),
       "test.yaml:1: grpc_options.host: unknown key (allowed: port)"},
      {"ports equal, both set",
       withOptions("http_options: {port: 7000}\ngrpc_options:\n  port: 7000\n"),
       "test.yaml:3: grpc_options.port: the HTTP and gRPC ports must differ (both are 7000)"},
      {"grpc port equals default http", withOptions("grpc_options: {port: 8000}\n"),
       "test.yaml:1: grpc_options.port: the HTTP and gRPC ports must differ (both are 8000)"},
      {"http port equals default grpc", withOptions("http_options: {port: 9000}\n"),
       "test.yaml:1: http_options.port: the HTTP and gRPC ports must differ (both are 9000)"},
  });
}

TEST_CASE("parseServeConfig checks applications") {
  constexpr char kNameRule[] =
      " (names are 1 to 63 characters from [A-Za-z0-9_.-], starting with a letter or digit)";
  constexpr char kPrefixRule[] =
      " (route prefixes start with '/', are at most 200 characters from [A-Za-z0-9/_.~-], and "
      "have no empty, '.' or '..' segments and no trailing '/')";
  checkErrors({
      {"application not a mapping", "applications:\n  - digits\n",
       "test.yaml:2: applications[0]: expected a mapping, got the string \"digits\""},
      {"application unknown key", "applications:\n  - name: a\n    import_path: app:main\n",
       "test.yaml:3: applications[0].import_path: unknown key (allowed: name, route_prefix, "
       "deployments)"},
      {"name missing", "applications:\n  - route_prefix: /a\n    deployments: []\n",
       "test.yaml:2: applications[0].name: required key is missing"},
      {"name invalid", "applications:\n  - name: my app\n",
       std::string("test.yaml:2: applications[0].name: application name \"my app\": contains "
                   "' '") +
           kNameRule},
      {"name a list", "applications:\n  - name: [a]\n",
       "test.yaml:2: applications[0].name: expected a name, got a list"},
      {"route prefix missing", "applications:\n  - name: a\n    deployments: []\n",
       "test.yaml:2: applications[0].route_prefix: required key is missing"},
      {"route prefix invalid", "applications:\n  - name: a\n    route_prefix: /a/\n",
       std::string("test.yaml:3: applications[0].route_prefix: route prefix \"/a/\": ends with "
                   "'/'") +
           kPrefixRule},
      {"route prefix with a quote", "applications:\n  - name: a\n    route_prefix: /a\"b\n",
       std::string("test.yaml:3: applications[0].route_prefix: route prefix \"/a\\\"b\": contains "
                   "'\\\"'") +
           kPrefixRule},
      {"deployments missing", "applications:\n  - name: a\n    route_prefix: /a\n",
       "test.yaml:2: applications[0].deployments: required key is missing"},
      {"deployments empty",
       "applications:\n  - name: a\n    route_prefix: /a\n    deployments: []\n",
       "test.yaml:4: applications[0].deployments: expected a non-empty list of deployments, got "
       "an empty list"},
      {"duplicate application name",
       R"(applications:
  - {name: a, route_prefix: /a, deployments: [{name: d1, model: {kind: noop}}]}
  - name: b
    route_prefix: /b
    deployments: [{name: d2, model: {kind: noop}}]
  - name: a
    route_prefix: /c
)",
       "test.yaml:6: applications[2].name: duplicate application name \"a\" (first used by "
       "applications[0] at line 2)"},
      {"duplicate route prefix",
       R"(applications:
  - name: a
    route_prefix: /same
    deployments: [{name: d1, model: {kind: noop}}]
  - name: b
    route_prefix: /same
)",
       "test.yaml:6: applications[1].route_prefix: duplicate route prefix \"/same\" (first used "
       "by applications[0] at line 3)"},
  });
}

TEST_CASE("route prefixes that could break haproxy.cfg or a map file are refused in the file") {
  constexpr char kPrefixRule[] =
      " (route prefixes start with '/', are at most 200 characters from [A-Za-z0-9/_.~-], and "
      "have no empty, '.' or '..' segments and no trailing '/')";
  const auto prefixError = [&](const std::string& shown, const std::string& problem) {
    return "test.yaml:3: applications[0].route_prefix: route prefix \"" + shown + "\": " + problem +
           kPrefixRule;
  };
  const auto app = [](const std::string& prefix) {
    return "applications:\n  - name: a\n    route_prefix: " + prefix +
           "\n    deployments: [{name: d, model: {kind: noop}}]\n";
  };
  checkErrors({
      {"no leading slash", app("app"), prefixError("app", "does not start with '/'")},
      {"empty", app("''"), prefixError("", "does not start with '/'")},
      {"a number", app("5"), prefixError("5", "does not start with '/'")},
      {"a space", app("'/a b'"), prefixError("/a b", "contains ' '")},
      {"a single quote", app("\"/a'b\""), prefixError("/a\\'b", "contains '\\''")},
      {"a hash", app("'/a#b'"), prefixError("/a#b", "contains '#'")},
      {"a percent", app("/a%20b"), prefixError("/a%20b", "contains '%'")},
      {"a newline", app("\"/a\\nb\""), prefixError("/a\\nb", "contains '\\n'")},
      {"a tab", app("\"/a\\tb\""), prefixError("/a\\tb", "contains '\\t'")},
  });
  // The wrong type is reported as such, not as a bad prefix.
  checkErrors({{"a list", app("[/a]"),
                "test.yaml:3: applications[0].route_prefix: expected a route prefix such as /app, "
                "got a list"}});
}

TEST_CASE("num_replicas 0 is an application scaled to zero") {
  StatusOr<ServeConfig> parsed = parseServeConfig(
      withDeployment("        num_replicas: 0\n        model: {kind: noop}\n"), "test.yaml");
  REQUIRE_MESSAGE(parsed.ok(), parsed.status().message());
  CHECK(parsed->applications.at(0).deployments.at(0).num_replicas == 0);
}

TEST_CASE("parseServeConfig checks deployments") {
  const std::string noop = "        model: {kind: noop}\n";
  const std::string d = "test.yaml:6: applications[0].deployments[0].";
  checkErrors({
      {"deployment not a mapping", withDeployment(noop + "      - 5\n"),
       "test.yaml:7: applications[0].deployments[1]: expected a mapping, got 5"},
      {"deployment name missing",
       "applications:\n  - name: a\n    route_prefix: /a\n    deployments:\n      - {model: "
       "{kind: noop}}\n",
       "test.yaml:5: applications[0].deployments[0].name: required key is missing"},
      {"deployment name invalid",
       "applications:\n  - name: a\n    route_prefix: /a\n    deployments:\n      - {name: "
       "\"d#1\", model: {kind: noop}}\n",
       "test.yaml:5: applications[0].deployments[0].name: deployment name \"d#1\": contains '#' "
       "(names are 1 to 63 characters from [A-Za-z0-9_.-], starting with a letter or digit)"},
      {"duplicate deployment name",
       withDeployment(noop + "      - name: d\n        model: {kind: noop, name: other}\n"),
       "test.yaml:7: applications[0].deployments[1].name: duplicate deployment name \"d\" in "
       "application \"app\" (first defined at line 5)"},
      {"model missing", withDeployment("        num_replicas: 1\n"),
       "test.yaml:5: applications[0].deployments[0].model: required key is missing"},
      {"duplicate key", withDeployment("        num_replicas: 1\n        num_replicas: 2\n" + noop),
       "test.yaml:7: applications[0].deployments[0].num_replicas: duplicate key (first at line "
       "6)"},
      {"num_replicas -1", withDeployment("        num_replicas: -1\n" + noop),
       d + "num_replicas: expected an integer in [0, 1024], got -1"},
      {"num_replicas 1025", withDeployment("        num_replicas: 1025\n" + noop),
       d + "num_replicas: expected an integer in [0, 1024], got 1025"},
      {"num_replicas a string", withDeployment("        num_replicas: \"2\"\n" + noop),
       d + "num_replicas: expected an integer in [0, 1024], got the string \"2\""},
      {"num_replicas a float", withDeployment("        num_replicas: 2.5\n" + noop),
       d + "num_replicas: expected an integer in [0, 1024], got 2.5"},
      {"num_replicas a boolean", withDeployment("        num_replicas: true\n" + noop),
       d + "num_replicas: expected an integer in [0, 1024], got the boolean true"},
      {"num_replicas empty", withDeployment("        num_replicas:\n" + noop),
       d + "num_replicas: expected an integer in [0, 1024], got an empty value"},
      {"num_replicas a list", withDeployment("        num_replicas: [1]\n" + noop),
       d + "num_replicas: expected an integer in [0, 1024], got a list"},
      {"num_replicas a mapping", withDeployment("        num_replicas: {}\n" + noop),
       d + "num_replicas: expected an integer in [0, 1024], got an empty mapping"},
      {"max_ongoing_requests 0", withDeployment("        max_ongoing_requests: 0\n" + noop),
       d + "max_ongoing_requests: expected an integer >= 1, got 0"},
      {"max_ongoing_requests -1", withDeployment("        max_ongoing_requests: -1\n" + noop),
       d + "max_ongoing_requests: expected an integer >= 1, got -1"},
      {"max_queued_requests a string",
       withDeployment("        max_queued_requests: unbounded\n" + noop),
       d + "max_queued_requests: expected -1 (unbounded) or an integer >= 0, got the string "
           "\"unbounded\""},
      {"max_ongoing_requests beyond int",
       withDeployment("        max_ongoing_requests: 99999999999\n" + noop),
       d + "max_ongoing_requests: expected an integer >= 1, got 99999999999"},
      {"max_ongoing_requests a float", withDeployment("        max_ongoing_requests: 1e3\n" + noop),
       d + "max_ongoing_requests: expected an integer >= 1, got 1e3"},
      {"max_queued_requests -2", withDeployment("        max_queued_requests: -2\n" + noop),
       d + "max_queued_requests: expected -1 (unbounded) or an integer >= 0, got -2"},
      {"graceful shutdown negative",
       withDeployment("        graceful_shutdown_timeout_s: -0.5\n" + noop),
       d + "graceful_shutdown_timeout_s: expected a number in [0, 86400], got -0.5"},
      {"graceful shutdown NaN",
       withDeployment("        graceful_shutdown_timeout_s: .nan\n" + noop),
       d + "graceful_shutdown_timeout_s: expected a number in [0, 86400], got .nan"},
      {"graceful shutdown with unit",
       withDeployment("        graceful_shutdown_timeout_s: 20s\n" + noop),
       d + "graceful_shutdown_timeout_s: expected a number in [0, 86400], got the string \"20s\""},
      {"actor options not a mapping", withDeployment("        ray_actor_options: 1\n" + noop),
       d + "ray_actor_options: expected a mapping, got 1"},
      {"actor options unknown key",
       withDeployment("        ray_actor_options: {num_cpus: 1, memory: 100}\n" + noop),
       d + "ray_actor_options.memory: unknown key (allowed: num_cpus, num_gpus)"},
      {"num_cpus negative", withDeployment("        ray_actor_options: {num_cpus: -1}\n" + noop),
       d + "ray_actor_options.num_cpus: expected a number in [0, 1024], got -1"},
      {"num_cpus 5000", withDeployment("        ray_actor_options: {num_cpus: 5000}\n" + noop),
       d + "ray_actor_options.num_cpus: expected a number in [0, 1024], got 5000"},
      {"grace of a century", withDeployment("        graceful_shutdown_timeout_s: 3.2e9\n" + noop),
       d + "graceful_shutdown_timeout_s: expected a number in [0, 86400], got 3.2e9"},
      {"num_gpus a word", withDeployment("        ray_actor_options: {num_gpus: all}\n" + noop),
       d + "ray_actor_options.num_gpus: expected a number in [0, 64], got the string \"all\""},
      {"batching unknown key", withDeployment("        batching: {max_batch: 2}\n" + noop),
       d + "batching.max_batch: unknown key (allowed: max_batch_size, batch_wait_timeout_s, "
           "linger_fraction)"},
      {"max_batch_size 0", withDeployment("        batching: {max_batch_size: 0}\n" + noop),
       d + "batching.max_batch_size: expected an integer in [1, 4096], got 0"},
      {"max_batch_size 4097", withDeployment("        batching: {max_batch_size: 4097}\n" + noop),
       d + "batching.max_batch_size: expected an integer in [1, 4096], got 4097"},
      {"batch wait negative",
       withDeployment("        batching: {batch_wait_timeout_s: -0.001}\n" + noop),
       d + "batching.batch_wait_timeout_s: expected a number in [0, 60], got -0.001"},
      {"batch wait 61", withDeployment("        batching: {batch_wait_timeout_s: 61}\n" + noop),
       d + "batching.batch_wait_timeout_s: expected a number in [0, 60], got 61"},
      {"linger over 1", withDeployment("        batching: {linger_fraction: 1.5}\n" + noop),
       d + "batching.linger_fraction: expected a number in [0, 1], got 1.5"},
      {"linger negative", withDeployment("        batching: {linger_fraction: -0.1}\n" + noop),
       d + "batching.linger_fraction: expected a number in [0, 1], got -0.1"},
  });
}

TEST_CASE("parseServeConfig reads a Python deployment and hands its values on as JSON") {
  StatusOr<ServeConfig> config = parseServeConfig(
      withDeployment(
          R"(        user_config: {threshold: 0.5, labels: [a, "1"], nested: {on: true}, none: null}
        health_check_period_s: 2
        health_check_timeout_s: 0.5
        model:
          kind: python
          import_path: my_pkg.models:app
          init_args: [1, 2.5, "x", 007, true]
          init_kwargs: {path: weights.bin, size: -3}
          working_dir: code
          python: /usr/bin/python3
          arena_mb: 8
)"),
      "test.yaml");
  REQUIRE_MESSAGE(config.ok(), messageOf(config.status()));
  const DeploymentSpec& d = config->applications[0].deployments[0];
  CHECK(d.model.kind == "python");
  CHECK(d.model.name == "d");
  CHECK(d.model.python.import_path == "my_pkg.models:app");
  CHECK(d.model.python.init_args_json == R"([1,2.5,"x",7,true])");
  CHECK(d.model.python.init_kwargs_json == R"({"path":"weights.bin","size":-3})");
  CHECK(d.model.python.working_dir == "code");
  CHECK(d.model.python.python == "/usr/bin/python3");
  CHECK(d.model.python.arena_mb == 8);
  CHECK(d.user_config_json ==
        R"({"labels":["a","1"],"nested":{"on":true},"none":null,"threshold":0.5})");
  CHECK(d.health_check_period_s == 2);
  CHECK(d.health_check_timeout_s == 0.5);
  CHECK_FALSE(d.batching_configured);
}

TEST_CASE("parseServeConfig checks Python deployments") {
  const std::string d = "test.yaml:6: applications[0].deployments[0].";
  const std::string rule =
      "expected a Python import path \"package.module:Name\" or \"package.module.Name\" of "
      "identifiers";
  checkErrors({
      {"import_path missing", withDeployment("        model: {kind: python}\n"),
       d + "model.import_path: required key is missing (model kind python imports the class from "
           "it, e.g. \"my_module:MyDeployment\")"},
      {"import_path without module",
       withDeployment("        model: {kind: python, import_path: app}\n"),
       d + "model.import_path: " + rule + ", got the string \"app\""},
      {"import_path two colons",
       withDeployment("        model: {kind: python, import_path: 'a:b:c'}\n"),
       d + "model.import_path: " + rule + ", got the string \"a:b:c\""},
      {"import_path not an identifier",
       withDeployment("        model: {kind: python, import_path: 'my-pkg:app'}\n"),
       d + "model.import_path: " + rule + ", got the string \"my-pkg:app\""},
      {"init_args not a list",
       withDeployment("        model: {kind: python, import_path: m:a, init_args: {a: 1}}\n"),
       d + "model.init_args: expected a list of arguments for the class's __init__, got a mapping"},
      {"init_kwargs not a mapping",
       withDeployment("        model: {kind: python, import_path: m:a, init_kwargs: [1]}\n"),
       d + "model.init_kwargs: expected a mapping of keyword arguments for the class's __init__, "
           "got a list"},
      {"arena too large",
       withDeployment("        model: {kind: python, import_path: m:a, arena_mb: 5000}\n"),
       d + "model.arena_mb: expected an integer in [1, 4096], got 5000"},
      {"import_path on mlp",
       withDeployment("        model: {kind: mlp, path: w, import_path: m:a}\n"),
       d + "model.import_path: only allowed for model kind python, not mlp"},
      {"user_config on noop",
       withDeployment("        user_config: {a: 1}\n        model: {kind: noop}\n"),
       d + "user_config: only allowed for model kind python (it goes to the class's reconfigure), "
           "not noop"},
      {"user_config a list",
       withDeployment(
           "        user_config: [1]\n        model: {kind: python, import_path: m:a}\n"),
       d + "user_config: expected a mapping (Ray Serve's user_config), got a list"},
      {"health period zero",
       withDeployment("        health_check_period_s: 0\n        model: {kind: noop}\n"),
       d + "health_check_period_s: expected a number in (0, 3600], got 0"},
  });
}

TEST_CASE("parseServeConfig reads an ONNX deployment: its path and the worker's keys") {
  StatusOr<ServeConfig> config = parseServeConfig(withDeployment(R"(        model:
          kind: onnx
          path: ../models/digits.onnx
          python: /usr/bin/python3
          arena_mb: 16
)"),
                                                  "test.yaml");
  REQUIRE_MESSAGE(config.ok(), messageOf(config.status()));
  const ModelSpec& model = config->applications[0].deployments[0].model;
  CHECK(model.kind == "onnx");
  CHECK(model.name == "d");
  CHECK(model.path == "../models/digits.onnx");
  CHECK(model.python.python == "/usr/bin/python3");
  CHECK(model.python.arena_mb == 16);
  // The import path and arguments are the replica's to fill in (model_factory.cc).
  CHECK(model.python.import_path.empty());
  CHECK(model.python.init_kwargs_json == "{}");

  StatusOr<ServeConfig> defaults =
      parseServeConfig(withDeployment("        model: {kind: onnx, path: m.onnx}\n"), "test.yaml");
  REQUIRE_MESSAGE(defaults.ok(), messageOf(defaults.status()));
  CHECK(defaults->applications[0].deployments[0].model.python.python.empty());
  CHECK(defaults->applications[0].deployments[0].model.python.arena_mb == 64);
}

TEST_CASE("parseServeConfig checks ONNX deployments") {
  const std::string d = "test.yaml:6: applications[0].deployments[0].";
  checkErrors({
      {"onnx without path", withDeployment("        model: {kind: onnx}\n"),
       d + "model.path: required key is missing (model kind onnx loads the ONNX graph from it)"},
      {"onnx with empty path", withDeployment("        model: {kind: onnx, path: ''}\n"),
       d + "model.path: expected a non-empty file path, got the string \"\""},
      {"onnx path a list", withDeployment("        model: {kind: onnx, path: [a]}\n"),
       d + "model.path: expected a non-empty file path, got a list"},
      {"import_path on onnx",
       withDeployment("        model: {kind: onnx, path: m.onnx, import_path: m:a}\n"),
       d + "model.import_path: only allowed for model kind python, not onnx"},
      {"init_kwargs on onnx",
       withDeployment("        model: {kind: onnx, path: m.onnx, init_kwargs: {a: 1}}\n"),
       d + "model.init_kwargs: only allowed for model kind python, not onnx"},
      {"working_dir on onnx",
       withDeployment("        model: {kind: onnx, path: m.onnx, working_dir: code}\n"),
       d + "model.working_dir: only allowed for model kind python, not onnx"},
      {"onnx python empty",
       withDeployment("        model: {kind: onnx, path: m.onnx, python: ''}\n"),
       d + "model.python: expected a non-empty path, got the string \"\""},
      {"onnx arena zero",
       withDeployment("        model: {kind: onnx, path: m.onnx, arena_mb: 0}\n"),
       d + "model.arena_mb: expected an integer in [1, 4096], got 0"},
      {"python on mlp", withDeployment("        model: {kind: mlp, path: w, python: python3}\n"),
       d + "model.python: only allowed for model kinds python and onnx, not mlp"},
      {"arena_mb on noop", withDeployment("        model: {kind: noop, arena_mb: 8}\n"),
       d + "model.arena_mb: only allowed for model kinds python and onnx, not noop"},
      {"user_config on onnx",
       withDeployment("        user_config: {a: 1}\n        model: {kind: onnx, path: m.onnx}\n"),
       d + "user_config: only allowed for model kind python (it goes to the class's reconfigure), "
           "not onnx"},
  });
}

TEST_CASE("parseServeConfig checks models") {
  const std::string d = "test.yaml:6: applications[0].deployments[0].";
  checkErrors({
      {"model not a mapping", withDeployment("        model: noop\n"),
       d + "model: expected a mapping, got the string \"noop\""},
      {"model unknown key", withDeployment("        model: {kind: noop, weights: x}\n"),
       d + "model.weights: unknown key (allowed: kind, name, path, sleep_ms, import_path, "
           "init_args, init_kwargs, working_dir, python, arena_mb)"},
      {"kind missing", withDeployment("        model: {name: m}\n"),
       d + "model.kind: required key is missing"},
      {"kind unknown", withDeployment("        model: {kind: torch}\n"),
       d + "model.kind: expected one of mlp, python, onnx, noop, sleep, got the string \"torch\""},
      {"kind a number", withDeployment("        model: {kind: 1}\n"),
       d + "model.kind: expected one of mlp, python, onnx, noop, sleep, got 1"},
      {"mlp without path", withDeployment("        model: {kind: mlp}\n"),
       d + "model.path: required key is missing (model kind mlp loads its weights from it)"},
      {"mlp with empty path", withDeployment("        model: {kind: mlp, path: ''}\n"),
       d + "model.path: expected a non-empty file path, got the string \"\""},
      {"path on noop", withDeployment("        model: {kind: noop, path: w.safetensors}\n"),
       d + "model.path: only allowed for model kinds mlp and onnx, not noop"},
      {"path on sleep",
       withDeployment("        model:\n          kind: sleep\n          path: w\n"),
       "test.yaml:8: applications[0].deployments[0].model.path: only allowed for model kinds mlp "
       "and onnx, not sleep"},
      {"sleep_ms on noop", withDeployment("        model: {kind: noop, sleep_ms: 5}\n"),
       d + "model.sleep_ms: only allowed for model kind sleep, not noop"},
      {"sleep_ms on mlp", withDeployment("        model: {kind: mlp, path: w, sleep_ms: 5}\n"),
       d + "model.sleep_ms: only allowed for model kind sleep, not mlp"},
      {"sleep_ms negative", withDeployment("        model: {kind: sleep, sleep_ms: -1}\n"),
       d + "model.sleep_ms: expected a number in [0, 86400000], got -1"},
      {"model name invalid", withDeployment("        model: {kind: noop, name: 'a/b'}\n"),
       d + "model.name: model name \"a/b\": contains '/' (names are 1 to 63 characters from "
           "[A-Za-z0-9_.-], starting with a letter or digit)"},
      {"model name reused across applications",
       R"(applications:
  - name: a
    route_prefix: /a
    deployments:
      - {name: d1, model: {kind: noop, name: shared}}
  - name: b
    route_prefix: /b
    deployments:
      - name: d2
        model:
          kind: noop
          name: shared
)",
       "test.yaml:12: applications[1].deployments[0].model.name: duplicate model name "
       "\"shared\"; model names must be unique in the file (first used by "
       "applications[0].deployments[0] at line 5)"},
      {"defaulted model name clashes",
       R"(applications:
  - name: a
    route_prefix: /a
    deployments:
      - {name: d1, model: {kind: noop, name: d2}}
      - name: d2
        model: {kind: noop}
)",
       "test.yaml:6: applications[0].deployments[1].model.name: duplicate model name \"d2\" (the "
       "deployment name); model names must be unique in the file (first used by "
       "applications[0].deployments[0] at line 5)"},
  });
}

TEST_CASE("deployment names may repeat across applications when model names differ") {
  StatusOr<ServeConfig> parsed = parseServeConfig(R"(applications:
  - {name: a, route_prefix: /a, deployments: [{name: d, model: {kind: noop, name: ma}}]}
  - {name: b, route_prefix: /b, deployments: [{name: d, model: {kind: noop, name: mb}}]}
)",
                                                  "test.yaml");
  CHECK_MESSAGE(parsed.ok(), parsed.status().message());
}

// A fresh directory per test, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "serve_config_test.XXXXXX");
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST_CASE("loadServeConfig reads a file and names it in errors") {
  TempDir dir;
  const std::string good = (dir.path() / "serve.yaml").string();
  std::ofstream(good) << kDesignExample;
  StatusOr<ServeConfig> loaded = loadServeConfig(good);
  REQUIRE_MESSAGE(loaded.ok(), loaded.status().message());
  CHECK(loaded->source == good);
  CHECK(loaded->applications.size() == 2);

  const std::string bad = (dir.path() / "bad.yaml").string();
  std::ofstream(bad) << "applications: []\n";
  CHECK(std::string(loadServeConfig(bad).status().message()) ==
        bad + ":1: applications: expected a non-empty list of applications, got an empty list");

  const std::string missing = (dir.path() / "missing.yaml").string();
  const Status not_found = loadServeConfig(missing).status();
  CHECK(not_found.code() == absl::StatusCode::kNotFound);
  CHECK(std::string(not_found.message()) ==
        missing + ": cannot open config file: No such file or directory");

  const Status is_dir = loadServeConfig(dir.path().string()).status();
  CHECK_FALSE(is_dir.ok());
  CHECK(std::string(is_dir.message()) ==
        dir.path().string() + ": cannot read config file: Is a directory");
}

}  // namespace
}  // namespace serve
