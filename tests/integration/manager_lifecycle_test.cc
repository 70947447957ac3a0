// The manager's own lifecycle around HAProxy: bursts of structural changes coalesce into one
// reload, a dead HAProxy is started again, and stopping the manager leaves no HAProxy behind.
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cerrno>

#include "tests/integration/manager_fixture.h"

namespace serve::testing {
namespace {

bool processGone(int pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

int masterPid(ManagerProcess& m) { return m.status()["haproxy"]["master_pid"].get<int>(); }

TEST_CASE("manager: registrations that outgrow the slots share one coalesced reload") {
  const auto binaries = haproxyBinaries();
  REQUIRE_FALSE(binaries.empty());
  const std::string config = managerConfig();
  auto m = startManager(config, binaries.front().path,
                        {{"RAY_SERVE_HAPROXY_MIN_SERVER_SLOTS", "1"},
                         {"RAY_SERVE_HAPROXY_BROADCAST_COALESCE_S", "0.5"}});
  auto first = addReplica(*m, config, "app", "d", "r1");  // fills the only slot
  auto r2 = startTestReplica(replicaConfig(config), "app");
  auto r3 = startTestReplica(replicaConfig(config), "app");
  REQUIRE(r2 != nullptr);
  REQUIRE(r3 != nullptr);

  HttpResult reply2;
  HttpResult reply3;
  std::thread t2([&] { reply2 = m->registerReplica("app", "d", r2->port(), "r2", r2->pid()); });
  std::thread t3([&] { reply3 = m->registerReplica("app", "d", r3->port(), "r3", r3->pid()); });
  t2.join();
  t3.join();
  INFO(reply2.body, reply3.body);
  CHECK(reply2.status == 200);
  CHECK(reply3.status == 200);
  CHECK(nlohmann::json::parse(reply2.body)["action"] == "reload");
  CHECK(nlohmann::json::parse(reply3.body)["action"] == "reload");
  const std::string metrics = httpGet(m->controlUrl("/metrics")).body;
  CHECK(metricValue(metrics,
                    "serve_haproxy_reloads_total{reason=\"slots_grown\",result=\"success\"}") == 1);
  // r1 kept slot1 through the reload; all three serve.
  const nlohmann::json status = m->status();
  CHECK(status["applications"][0]["slot_capacity"] == 4);
  CHECK(status["applications"][0]["slots"][0]["replica_id"] == "r1");
  CHECK(activeSlots(*m, "app") == 3);
  std::vector<double> before{modelRequests(*first), modelRequests(*r2), modelRequests(*r3)};
  for (int i = 0; i < 30; ++i) {
    REQUIRE(httpPost(m->url("/app"), kInferBody).status == 200);
  }
  CHECK(modelRequests(*first) > before[0]);
  CHECK(modelRequests(*r2) > before[1]);
  CHECK(modelRequests(*r3) > before[2]);
}

TEST_CASE("manager: a dead HAProxy is started again with the same routing") {
  const auto binaries = haproxyBinaries();
  REQUIRE_FALSE(binaries.empty());
  const std::string config = managerConfig();
  auto m = startManager(config, binaries.front().path);
  auto app = addReplica(*m, config, "app", "d", "app-1");
  const int master = masterPid(*m);
  const int worker = m->workerPid();
  REQUIRE(master > 0);
  REQUIRE(worker > 0);
  ::kill(master, SIGKILL);
  ::kill(worker, SIGKILL);
  CHECK(eventually([&] { return masterPid(*m) != master && masterPid(*m) > 0; }));
  CHECK(eventually([&] { return httpPost(m->url("/app"), kInferBody).status == 200; }));
  CHECK(httpGet(m->url("/-/routes")).body == R"({"/app":"app","/slow":"slow"})");
  CHECK(metricValue(httpGet(m->controlUrl("/metrics")).body, "serve_haproxy_restarts_total") == 1);
}

TEST_CASE("manager: stopping the manager leaves no HAProxy process") {
  for (const HaproxyBinary& haproxy : haproxyBinaries()) {
    CAPTURE(haproxy.version);
    const std::string config = managerConfig();
    auto m = startManager(config, haproxy.path);
    const int master = masterPid(*m);
    const int worker = m->workerPid();
    // A reload first, so an old worker generation exists too.
    REQUIRE(m->deploy(managerConfig(1500, 30, "/app",
                                    "  - {name: x, route_prefix: /x, deployments: [{name: x, "
                                    "model: {kind: noop, name: x}}]}\n"))
                .status == 200);
    const int new_worker = m->workerPid();
    CHECK(new_worker != worker);
    m->signal(SIGTERM);
    CHECK(m->wait(std::chrono::seconds(15)) == 0);
    CHECK(processGone(master));
    CHECK(processGone(worker));
    CHECK(processGone(new_worker));
    CHECK(m->output().find("{\"event\":\"stopped\"}") != std::string::npos);
  }
}

TEST_CASE("manager: SIGTERM answers every request HAProxy accepted, queued ones included") {
  for (const HaproxyBinary& haproxy : haproxyBinaries()) {
    CAPTURE(haproxy.version);
    // One replica that takes 2 requests at a time, 400 ms each: of 6 requests, 4 wait in
    // HAProxy's queue for the replica, which must not leave its slot before they are answered.
    auto m = startNode(oneAppConfig("max_ongoing_requests: 2, graceful_shutdown_timeout_s: 10, "
                                    "model: {kind: sleep, sleep_ms: 400, name: s}"),
                       "", {{"RAY_SERVE_HAPROXY_BINARY_PATH", haproxy.path}});
    REQUIRE(eventually([&] { return allServing(*m, "app", 1); }));
    std::vector<HttpResult> results(6);
    std::vector<std::thread> clients;
    for (auto& result : results) {
      clients.emplace_back([&] { result = httpPost(m->url("/app"), kInferBody); });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    m->signal(SIGTERM);
    for (auto& t : clients) {
      t.join();
    }
    for (const HttpResult& r : results) {
      INFO(r.status, " ", r.curl_error, " ", r.body);
      CHECK(r.status == 200);
    }
    CHECK(m->wait(std::chrono::seconds(30)) == 0);
  }
}

TEST_CASE("manager: the CLI drains the node and waits for requests in progress") {
  const auto binaries = haproxyBinaries();
  REQUIRE_FALSE(binaries.empty());
  const std::string config = managerConfig(/*slow_ms=*/1500);
  auto m = startManager(config, binaries.front().path);
  auto slow = addReplica(*m, config, "slow", "s", "slow-1");
  const std::string cli =
      std::string("RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S=0.5 RAY_SERVE_HAPROXY_CONTROL_PORT=") +
      std::to_string(m->controlPort()) + " RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=" + m->configFile() +
      " RAY_SERVE_HAPROXY_SOCKET_PATH=" + m->adminSocket() + " " + SERVE_MANAGER_BINARY + " ";
  auto run = [&](const std::string& args) { return runShell(cli + args); };

  CHECK(m->status()["in_flight"] == 0);
  CHECK(run("routes") == std::make_pair(0, std::string(R"({"/app":"app","/slow":"slow"})"
                                                       "\n")));

  // The request in progress comes from another process: a connection of this test process
  // would be inherited by the CLI that popen() forks, and stay open for HAProxy as long as the
  // CLI runs.
  ChildProcess curl;
  REQUIRE(curl.spawn({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-XPOST",
                      m->url("/slow"), "-d", kInferBody},
                     {{"PATH", "/usr/bin:/bin"}}));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto started = std::chrono::steady_clock::now();
  const std::pair<int, std::string> drain = run("drain");
  const int rc = drain.first;
  const std::string& out = drain.second;  // not a structured binding: INFO captures it
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("{\"drained\":true}") != std::string::npos);
  CHECK(waited > 0.9);  // it waited for the 1.5 s request started 0.3 s before
  CHECK(curl.wait(std::chrono::seconds(5)) == 0);
  CHECK(curl.output() == "200");
  const HttpResult health = httpGet(m->url("/-/healthz"));
  CHECK(health.status == 503);
  CHECK(health.body == "This node is being drained.");
  CHECK(run("drain --undo").first == 0);
  CHECK(httpGet(m->url("/-/healthz")).status == 200);
  CHECK(run("bogus").first == 2);
}

}  // namespace
}  // namespace serve::testing

namespace serve::testing {
namespace {

TEST_CASE("manager: a state directory others may write to is refused, not used or changed") {
  ManagerTestOptions o;
  o.config_yaml = oneAppConfig("model: {kind: noop, name: echo}");
  ManagerProcess m(o);
  // The folder of RAY_SERVE_HAPROXY_CONFIG_FILE_LOC (and of the admin socket), made shared.
  const std::string run = m.dir() + "/run";
  REQUIRE(::mkdir(run.c_str(), 0777) == 0);
  REQUIRE(::chmod(run.c_str(), 0777) == 0);
  CHECK_FALSE(m.start(std::chrono::seconds(10)));
  const std::optional<int> code = m.wait(std::chrono::seconds(10));
  REQUIRE(code.has_value());
  CHECK(*code == 1);
  INFO(m.output());
  CHECK(m.output().find("haproxy-manager: state directory " + run +
                        " may be written by group or others (mode 0777): they could replace its "
                        "sockets; chmod go-w it; use a directory of this user's, e.g. set "
                        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC to a path inside one") !=
        std::string::npos);
  struct stat st {};
  REQUIRE(::stat(run.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0777);
}

}  // namespace
}  // namespace serve::testing
