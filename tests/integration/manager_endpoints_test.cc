// What clients and operators see from HAProxy itself: /-/healthz, /-/routes, 404, 503 with no
// replica, 408 on timeout, the admin socket with socat, the exporters on the metrics port, and
// drift put back after a hand edit. Exact bodies and counts.
#include <httplib.h>
#include <stdio.h>

#include "common/version.h"
#include "tests/integration/manager_fixture.h"

namespace serve::testing {
namespace {

// GET /v2/health/ready on the node: status and body.
std::pair<long, std::string> v2Ready(ManagerProcess& m) {
  HttpResult r = httpGet(m.url("/v2/health/ready"));
  return {r.status, r.body};
}

TEST_CASE("manager: HAProxy's own answers are exact") {
  for (const HaproxyBinary& haproxy : haproxyBinaries()) {
    CAPTURE(haproxy.version);
    const std::string config = managerConfig(1500, /*request_timeout_s=*/0.5);
    auto m = startManager(config, haproxy.path);

    HttpResult health = httpGet(m->url("/-/healthz"));
    CHECK(health.status == 503);
    CHECK(health.body == "No replica is available.");
    HttpResult routes = httpGet(m->url("/-/routes"));
    CHECK(routes.status == 200);
    CHECK(routes.headers["content-type"] == "application/json");
    CHECK(routes.body == R"({"/app":"app","/slow":"slow"})");
    HttpResult missing = httpGet(m->url("/nope/x"));
    CHECK(missing.status == 404);
    CHECK(missing.body == "Path '/nope/x' not found. Ping http://127.0.0.1:" +
                              std::to_string(m->httpPort()) + "/-/routes for available routes.");
    HttpResult no_replica = httpPost(m->url("/app"), kInferBody);
    CHECK(no_replica.status == 503);
    CHECK(no_replica.body == "No replica of application 'app' is available.");
    // KServe v2 server health and errors, as KServe clients (tritonclient) read them.
    HttpResult live = httpGet(m->url("/v2/health/live"));
    CHECK(live.status == 200);
    CHECK(live.headers["content-type"] == "application/json");
    CHECK(live.body == R"({"live":true})");
    CHECK(v2Ready(*m) == std::pair<long, std::string>{503, R"({"ready":false})"});
    HttpResult server = httpGet(m->url("/v2"));
    CHECK(server.status == 200);
    CHECK(server.body == R"({"name":"haproxy-serve","version":")" + std::string(kServeVersion) +
                             R"(","extensions":["binary_tensor_data"]})");
    HttpResult no_model = httpPost(m->url("/v2/models/nope/infer"), kInferBody);
    CHECK(no_model.status == 404);
    CHECK(no_model.headers["content-type"] == "application/json");
    CHECK(nlohmann::json::parse(no_model.body)["error"] ==
          "Path '/v2/models/nope/infer' not found. Ping http://127.0.0.1:" +
              std::to_string(m->httpPort()) + "/-/routes for available routes.");

    auto app = addReplica(*m, config, "app", "d", "app-1");
    health = httpGet(m->url("/-/healthz"));
    CHECK(health.status == 200);
    CHECK(health.body == "success");
    // The prefix, a sub-path of it, and the KServe v2 path by model name.
    HttpResult infer = httpPost(m->url("/app"), kInferBody);
    CHECK(infer.status == 200);
    CHECK(infer.body.find(kEchoReply) != std::string::npos);
    CHECK(httpPost(m->url("/v2/models/echo/infer"), kInferBody).status == 200);
    CHECK(httpGet(m->url("/v2/models/echo/ready")).body == R"({"ready":true})");
    CHECK(httpGet(m->url("/v2/models/unknown/ready")).status == 404);
    // Ready needs every application: `slow` has no replica yet.
    CHECK(v2Ready(*m) == std::pair<long, std::string>{503, R"({"ready":false})"});

    // Node drain.
    CHECK(m->post("/drain").status == 200);
    health = httpGet(m->url("/-/healthz"));
    CHECK(health.status == 503);
    CHECK(health.body == "This node is being drained.");
    CHECK(m->post("/undrain").status == 200);
    CHECK(httpGet(m->url("/-/healthz")).status == 200);

    // A replica that passes health checks but never answers: HAProxy's 408 at
    // request_timeout_s + 1 s (the replica's own 408 would come at request_timeout_s).
    httplib::Server hang;
    hang.Get("/-/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("success", "text/plain");
    });
    hang.Post(".*", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::seconds(3));
      res.set_content("late", "text/plain");
    });
    const int hang_port = hang.bind_to_any_port("127.0.0.1");
    std::thread hang_thread([&] { hang.listen_after_bind(); });
    CHECK(m->registerReplica("slow", "s", hang_port, "hanging").status == 200);
    const HttpResult timed_out = httpPost(m->url("/slow"), kInferBody);
    CHECK(timed_out.status == 408);
    CHECK(timed_out.body == "The request timed out before a replica answered.\n");
    CHECK(timed_out.seconds > 1.4);
    CHECK(timed_out.seconds < 3.0);
    CHECK(v2Ready(*m) == std::pair<long, std::string>{200, R"({"ready":true})"});
    CHECK(m->post("/drain").status == 200);
    CHECK(v2Ready(*m) == std::pair<long, std::string>{503, R"({"ready":false})"});
    CHECK(m->post("/undrain").status == 200);
    hang.stop();
    hang_thread.join();

    // socat on the admin socket, exactly as the Ray Serve docs show it.
    const std::string stat =
        runShell("echo \"show stat\" | socat stdio " + m->adminSocket()).second;
    CHECK(stat.rfind("# pxname,svname,", 0) == 0);
    CHECK(stat.find("\nhttp-app,slot1,") != std::string::npos);

    // Prometheus: HAProxy's exporter and the manager's metrics on the same port.
    const std::string exported =
        httpGet("http://127.0.0.1:" + std::to_string(m->metricsPort()) + "/metrics").body;
    CHECK(exported.find("haproxy_backend_http_responses_total{proxy=\"http-app\",code=\"2xx\"}") !=
          std::string::npos);
    CHECK(exported.find("haproxy_backend_http_responses_total{proxy=\"http-slow\",code=\"2xx\"}") !=
          std::string::npos);
    const std::string manager =
        httpGet("http://127.0.0.1:" + std::to_string(m->metricsPort()) + "/metrics/manager").body;
    CHECK(metricValue(manager, "serve_haproxy_registered_replicas") == 2);
    CHECK(metricValue(manager, "serve_haproxy_slots{backend=\"http-app\",state=\"active\"}") == 1);
    CHECK(metricValue(manager, "serve_haproxy_slots{backend=\"http-app\",state=\"free\"}") == 15);
    CHECK(metricValue(manager, "serve_haproxy_propagation_latency_ms_count") >= 2);
    // Per-request metrics from HAProxy's log lines (datagrams: they may trail the replies).
    auto ingress = [&](const std::string& series) {
      return metricValue(
          httpGet("http://127.0.0.1:" + std::to_string(m->metricsPort()) + "/metrics/manager").body,
          series);
    };
    CHECK(eventually([&] {
      return ingress(
                 "serve_num_http_requests{application=\"app\",route=\"/app\",method="
                 "\"POST\",status=\"200\"}") == 1 &&
             ingress(
                 "serve_num_http_requests{application=\"app\",route=\"/app\",method="
                 "\"POST\",status=\"503\"}") == 1 &&
             ingress(
                 "serve_num_http_error_requests{application=\"app\",route=\"/app\","
                 "method=\"POST\",status=\"503\"}") == 1 &&
             ingress(
                 "serve_http_request_latency_ms_count{application=\"app\",route=\"/app\","
                 "method=\"POST\",status=\"200\"}") == 1;
    }));
  }
}

TEST_CASE("manager: the stats page listens on loopback only, and asks for credentials if set") {
  for (const HaproxyBinary& haproxy : haproxyBinaries()) {
    CAPTURE(haproxy.version);
    const std::string config = managerConfig(1500);
    {
      auto m = startManager(config, haproxy.path);
      const std::string port = std::to_string(m->statsPort());
      const HttpResult local = httpGet("http://127.0.0.1:" + port + "/stats;csv");
      CHECK(local.status == 200);
      CHECK(local.body.rfind("# pxname,svname,", 0) == 0);
      // 127.0.0.2 is this machine too: a bind on every interface would answer there.
      const HttpResult other = httpGet("http://127.0.0.2:" + port + "/stats;csv");
      CHECK(other.status == 0);
    }
    auto m =
        startManager(config, haproxy.path, {{"RAY_SERVE_HAPROXY_STATS_AUTH", "ops:correct-horse"}});
    const std::string url = "http://127.0.0.1:" + std::to_string(m->statsPort()) + "/stats;csv";
    CHECK(httpGet(url).status == 401);
    const HttpResult wrong =
        httpRequest("GET", url, "", {{"Authorization", "Basic b3BzOndyb25nLXBhc3N3b3Jk"}});
    CHECK(wrong.status == 401);  // ops:wrong-password
    const HttpResult right =
        httpRequest("GET", url, "", {{"Authorization", "Basic b3BzOmNvcnJlY3QtaG9yc2U="}});
    CHECK(right.status == 200);  // ops:correct-horse
    CHECK(right.body.rfind("# pxname,svname,", 0) == 0);
  }
}

TEST_CASE("manager: a slot changed by hand over the admin socket is put back and counted") {
  const auto binaries = haproxyBinaries();
  REQUIRE_FALSE(binaries.empty());
  const std::string config = managerConfig();
  auto m = startManager(config, binaries.front().path);
  auto app = addReplica(*m, config, "app", "d", "app-1");
  CHECK(m->admin("set server http-app/slot1 state maint").find_first_not_of("\n ") ==
        std::string::npos);
  CHECK(m->admin("del map " + m->dir() + "/run/routes_exact.map /app").find_first_not_of("\n ") ==
        std::string::npos);
  CHECK(eventually([&] {
    return metricValue(httpGet(m->controlUrl("/metrics")).body,
                       "serve_haproxy_drift_repairs_total") == 2;
  }));
  CHECK(httpPost(m->url("/app"), kInferBody).status == 200);
  CHECK(m->admin("show map " + m->dir() + "/run/routes_exact.map").find(" /app http-app") !=
        std::string::npos);
}

TEST_CASE("manager: control API errors are explicit") {
  const auto binaries = haproxyBinaries();
  REQUIRE_FALSE(binaries.empty());
  const std::string config = managerConfig();
  auto m = startManager(config, binaries.front().path);
  HttpResult r = m->registerReplica("nope", "d", 30000, "x");
  CHECK(r.status == 404);
  CHECK(r.body == "{\"error\":\"no application named 'nope' in the config\"}\n");
  r = m->registerReplica("app", "other", 30000, "x");
  CHECK(r.status == 400);
  r = m->deregister("ghost");
  CHECK(r.status == 404);
  CHECK(r.body == "{\"error\":\"no replica 'ghost' is registered\"}\n");
  r = httpPost(m->controlUrl("/drain"), "");
  CHECK(r.status == 401);
  r = m->deploy("applications: [{name: x, route_prefix: 'bad prefix'}]\n");
  CHECK(r.status == 400);
  CHECK(r.body.find("test.yaml:1:") != std::string::npos);
}

}  // namespace
}  // namespace serve::testing
