// Structural changes: adding and removing applications reloads HAProxy once each, validated
// first and hitless; a route prefix change is applied at runtime; an invalid candidate config
// is refused and the running one keeps serving. Each case runs against every HAProxy found.
#include <filesystem>
#include <fstream>

#include "tests/integration/manager_fixture.h"

namespace serve::testing {
namespace {

const std::string kThirdApp =
    "  - name: third\n"
    "    route_prefix: /third\n"
    "    deployments:\n"
    "      - {name: t, model: {kind: noop, name: third}}\n";

double reloads(ManagerProcess& m, const std::string& reason, const std::string& result) {
  return metricValue(
      httpGet(m.controlUrl("/metrics")).body,
      "serve_haproxy_reloads_total{reason=\"" + reason + "\",result=\"" + result + "\"}");
}

TEST_CASE("manager: adding and removing an application reloads once each, hitlessly") {
  for (const HaproxyBinary& haproxy : haproxyBinaries()) {
    CAPTURE(haproxy.version);
    const std::string config = managerConfig(/*slow_ms=*/1500);
    auto m = startManager(config, haproxy.path);
    auto slow = addReplica(*m, config, "slow", "s", "slow-1");
    auto app = addReplica(*m, config, "app", "d", "app-1");
    const int worker = m->workerPid();

    // A request in flight across the reload completes on the old worker.
    HttpResult in_flight;
    std::thread client([&] { in_flight = httpPost(m->url("/slow"), kInferBody); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const HttpResult added = m->deploy(managerConfig(1500, 30, "/app", kThirdApp));
    INFO(added.body);
    CHECK(added.status == 200);
    const auto reply = nlohmann::json::parse(added.body);
    CHECK(reply["action"] == "reload");
    CHECK(reply["reasons"] == nlohmann::json::array({"application 'third' added"}));
    const int new_worker = m->workerPid();
    CHECK(new_worker != worker);
    client.join();
    CHECK(in_flight.status == 200);
    CHECK(in_flight.body.find("\"model_name\":\"sleeper\"") != std::string::npos);

    // Existing replicas kept their slots through the reload; the new application is routed.
    CHECK(httpPost(m->url("/app"), kInferBody).status == 200);
    CHECK(httpGet(m->url("/-/routes")).body == R"({"/app":"app","/slow":"slow","/third":"third"})");
    const HttpResult third = httpPost(m->url("/third"), kInferBody);
    CHECK(third.status == 503);
    CHECK(third.body == "No replica of application 'third' is available.");

    const HttpResult removed = m->deploy(config);
    INFO(removed.body);
    CHECK(removed.status == 200);
    CHECK(nlohmann::json::parse(removed.body)["reasons"] ==
          nlohmann::json::array({"application 'third' removed"}));
    CHECK(httpPost(m->url("/third"), kInferBody).status == 404);
    CHECK(httpPost(m->url("/app"), kInferBody).status == 200);
    CHECK(reloads(*m, "application_added", "success") == 1);
    CHECK(reloads(*m, "application_removed", "success") == 1);
    // Old workers finish and leave.
    CHECK(eventually([&] {
      return metricValue(httpGet(m->controlUrl("/metrics")).body, "serve_haproxy_old_workers") == 0;
    }));
  }
}

TEST_CASE("manager: a route prefix change needs no reload") {
  for (const HaproxyBinary& haproxy : haproxyBinaries()) {
    CAPTURE(haproxy.version);
    const std::string config = managerConfig();
    auto m = startManager(config, haproxy.path);
    auto app = addReplica(*m, config, "app", "d", "app-1");
    const int worker = m->workerPid();
    const HttpResult changed = m->deploy(managerConfig(1500, 30, "/models/echo"));
    INFO(changed.body);
    CHECK(changed.status == 200);
    CHECK(nlohmann::json::parse(changed.body)["action"] == "runtime");
    CHECK(m->workerPid() == worker);
    const HttpResult old_prefix = httpPost(m->url("/app"), kInferBody);
    CHECK(old_prefix.status == 404);
    CHECK(old_prefix.body == "Path '/app' not found. Ping http://127.0.0.1:" +
                                 std::to_string(m->httpPort()) + "/-/routes for available routes.");
    const HttpResult new_prefix = httpPost(m->url("/models/echo"), kInferBody);
    CHECK(new_prefix.status == 200);
    CHECK(new_prefix.body.find(kEchoReply) != std::string::npos);
    CHECK(httpGet(m->url("/-/routes")).body == R"({"/models/echo":"app","/slow":"slow"})");
  }
}

TEST_CASE("manager: a candidate config refused by haproxy -c leaves the running one serving") {
  for (const HaproxyBinary& haproxy : haproxyBinaries()) {
    CAPTURE(haproxy.version);
    // An operator's template copy: the hook through which a broken config reaches haproxy -c.
    TempDir templates;
    for (const char* file :
         {"haproxy.cfg.mustache", "408.http", "503.http", "grpc-504.http", "grpc-503.http"}) {
      std::filesystem::copy_file(std::string(SERVE_SOURCE_DIR) + "/templates/" + file,
                                 templates.path() + "/" + file);
    }
    const std::string config = managerConfig();
    auto m =
        startManager(config, haproxy.path, {{"RAY_SERVE_HAPROXY_TEMPLATE_DIR", templates.path()}});
    auto app = addReplica(*m, config, "app", "d", "app-1");
    const int worker = m->workerPid();
    // The config in force, as a successor would read it: the start file's snapshot.
    const std::string in_force_file = m->dir() + "/run/config-in-force.json";
    auto readText = [](const std::string& path) {
      std::ifstream in(path);
      return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    };
    const std::string in_force = readText(in_force_file);
    const nlohmann::json record = nlohmann::json::parse(in_force);
    CHECK(readText(record["snapshot"].get<std::string>()) == readText(m->dir() + "/serve.yaml"));

    {
      std::ofstream out(templates.path() + "/haproxy.cfg.mustache", std::ios::app);
      out << "\nbackend broken_by_test\n  no-such-directive-for-the-test on\n";
    }
    const HttpResult refused = m->deploy(managerConfig(1500, 30, "/app", kThirdApp));
    INFO(refused.body);
    CHECK(refused.status == 400);
    CHECK(refused.body.find("refused by haproxy -c") != std::string::npos);
    CHECK(refused.body.find("no-such-directive-for-the-test") != std::string::npos);
    // The log line reaches the test through a pipe: it may lag the HTTP answer a little.
    CHECK(
        eventually([&] { return m->output().find("refused by haproxy -c") != std::string::npos; }));

    // Nothing changed for clients.
    CHECK(m->workerPid() == worker);
    CHECK(httpPost(m->url("/app"), kInferBody).status == 200);
    CHECK(httpPost(m->url("/third"), kInferBody).status == 404);
    CHECK(httpGet(m->url("/-/routes")).body == R"({"/app":"app","/slow":"slow"})");
    CHECK(reloads(*m, "application_added", "invalid") == 1);
    // Recorded as in force while HAProxy checked it, then put back: a successor would not run it.
    CHECK(readText(in_force_file) == in_force);

    // Fixed template: the same deploy goes through.
    std::filesystem::copy_file(std::string(SERVE_SOURCE_DIR) + "/templates/haproxy.cfg.mustache",
                               templates.path() + "/haproxy.cfg.mustache",
                               std::filesystem::copy_options::overwrite_existing);
    const HttpResult accepted = m->deploy(managerConfig(1500, 30, "/app", kThirdApp));
    INFO(accepted.body);
    CHECK(accepted.status == 200);
    CHECK(m->workerPid() != worker);
    CHECK(httpPost(m->url("/app"), kInferBody).status == 200);
  }
}

}  // namespace
}  // namespace serve::testing
