// `haproxy-manager start` and `haproxy-manager deploy` refuse the same configs with the same
// line, naming the file, the key and its rule (common/config_keys.h), and a refused deploy
// leaves the running node serving its config. Real managers, HAProxy and replicas on loopback.
#include <fstream>
#include <thread>

#include "tests/integration/manager_fixture.h"

namespace serve::testing {
namespace {

TEST_CASE("manager: start and deploy refuse a bad config with the same line naming the key") {
  auto m = startNode(oneAppConfig("model: {kind: noop, name: echo}"));
  REQUIRE(eventually([&] { return allServing(*m, "app", 1); }, std::chrono::seconds(30)));
  // With an id of its own, so the answer is the same bytes every time (else the replica puts
  // the request's x-request-id, a fresh UUID, in it).
  const std::string body = R"({"id":"same",)" + kInferBody.substr(1);
  const std::string echo_body = R"({"model_name":"echo","id":"same",)" + kEchoReply;
  const HttpResult before = httpPost(m->url("/app"), body);
  CHECK(before.status == 200);
  CHECK(before.body == echo_body);

  const std::string env = "RAY_SERVE_LOG_TO_STDERR=0 RAY_SERVE_LOG_DIR=" + m->dir() +
                          "/logs SERVE_REPLICA_BINARY=" + SERVE_REPLICA_BINARY +
                          " RAY_SERVE_HAPROXY_CONTROL_PORT=" + std::to_string(m->controlPort()) +
                          " ";
  // `deploy` talks to the running node; `start` gets a state directory and ports of its own, and
  // a time limit, so a config it wrongly took could not touch the node.
  const std::string deploy_cli = "cd " + m->dir() + " && " + env +
                                 "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=" + m->configFile() +
                                 " RAY_SERVE_HAPROXY_SOCKET_PATH=" + m->adminSocket() + " " +
                                 SERVE_MANAGER_BINARY + " deploy ";
  const std::string start_cli =
      "cd " + m->dir() + " && " + env + "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=" + m->dir() +
      "/start-run/haproxy.cfg RAY_SERVE_HAPROXY_SOCKET_PATH=" + m->dir() +
      "/start-run/admin.sock RAY_SERVE_HAPROXY_CONTROL_PORT=1 timeout 20 " + SERVE_MANAGER_BINARY +
      " start --config ";

  const std::string file = m->dir() + "/bad.yaml";  // line 6 holds the deployment's keys
  const auto with = [](const std::string& keys) {
    return "http_options: {host: 127.0.0.1, port: 8000, request_timeout_s: 30}\n"
           "applications:\n"
           "  - name: app\n"
           "    route_prefix: /app\n"
           "    deployments:\n"
           "      - {name: d, " +
           keys + "}\n";
  };
  struct Case {
    std::string yaml;
    std::string line;  // what both print, after "haproxy-manager: "
  };
  std::vector<Case> cases = {
      {"http_options: {host: 127.0.0.1, port: 8000, request_timeout_s: 1e300}\n"
       "applications:\n"
       "  - {name: app, route_prefix: /app, deployments: [{name: d, model: {kind: noop}}]}\n",
       file + ":1: http_options.request_timeout_s: expected a number in [0, 86400] (0 = no "
              "timeout), got 1e300"},
      {with("ray_actor_options: {num_cpus: 5000}, model: {kind: noop, name: echo}"),
       file + ":6: applications[0].deployments[0].ray_actor_options.num_cpus: expected a number "
              "in [0, 1024], got 5000"},
      {with("max_ongoing_requests: 0, model: {kind: noop, name: echo}"),
       file + ":6: applications[0].deployments[0].max_ongoing_requests: expected an integer >= 1, "
              "got 0"},
      {with("max_ongoing_request: 4, model: {kind: noop, name: echo}"),
       file + ":6: applications[0].deployments[0].max_ongoing_request: unknown key (allowed: "
              "name, num_replicas, max_ongoing_requests, max_queued_requests, "
              "graceful_shutdown_timeout_s, ray_actor_options, model, batching, user_config, "
              "health_check_period_s, health_check_timeout_s)"},
  };
  // In range, but more CPUs than this node has: refused by the node checks, not the parser.
  const unsigned cpus = std::thread::hardware_concurrency();
  if (cpus > 0 && cpus < 1024) {
    cases.push_back({with("ray_actor_options: {num_cpus: 1024}, model: {kind: noop, name: echo}"),
                     "app.d: ray_actor_options.num_cpus 1024 is more than this node's " +
                         std::to_string(cpus) + " CPU" + (cpus == 1 ? "" : "s") +
                         " (each replica runs that many compute threads)"});
  }

  for (const Case& c : cases) {
    CAPTURE(c.yaml);
    std::ofstream(file, std::ios::trunc) << c.yaml;
    // A relative name: both print the file as an absolute path.
    const std::pair<int, std::string> started = runShell(start_cli + "bad.yaml");
    const std::pair<int, std::string> deployed = runShell(deploy_cli + "bad.yaml");
    CHECK(started.first == 1);
    CHECK(deployed.first == 1);
    CHECK(started.second == "haproxy-manager: " + c.line + "\n");
    CHECK(deployed.second == started.second);
  }

  // The node kept its config: the same replica answers the same body.
  const HttpResult after = httpPost(m->url("/app"), body);
  CHECK(after.status == 200);
  CHECK(after.body == echo_body);
  CHECK(allServing(*m, "app", 1));
}

}  // namespace
}  // namespace serve::testing
