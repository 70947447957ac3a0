// Membership changes through the runtime API: scaling, a replica killed outright, and a long
// request that outlives hard-stop-after while membership changes around it. Real HAProxy,
// real replicas, loopback only.
#include <signal.h>

#include "tests/integration/manager_fixture.h"

namespace serve::testing {
namespace {

// Requests through HAProxy, then which replicas' model counters moved.
std::vector<double> deltasAfterRequests(ManagerProcess& m,
                                        std::vector<std::unique_ptr<ReplicaProcess>>& replicas,
                                        int requests) {
  std::vector<double> before;
  for (auto& r : replicas) {
    before.push_back(modelRequests(*r));
  }
  for (int i = 0; i < requests; ++i) {
    const HttpResult res = httpPost(m.url("/app"), kInferBody);
    REQUIRE(res.status == 200);
  }
  std::vector<double> deltas;
  for (std::size_t i = 0; i < replicas.size(); ++i) {
    deltas.push_back(modelRequests(*replicas[i]) - before[i]);
  }
  return deltas;
}

TEST_CASE("manager: scale 1 -> 8 -> 2 -> 0 -> 3 under load, without a reload or a failure") {
  const auto binaries = haproxyBinaries();
  REQUIRE_FALSE(binaries.empty());
  const std::string config = managerConfig();
  auto m = startManager(config, binaries.front().path);
  const int worker = m->workerPid();
  REQUIRE(worker > 0);

  std::vector<std::unique_ptr<ReplicaProcess>> current;
  std::vector<std::unique_ptr<ReplicaProcess>> removed;
  int next_id = 0;
  // Replica ids in order of creation, so the removed ones can be named.
  std::vector<std::string> ids;
  auto add = [&](int n) {
    while (static_cast<int>(current.size()) < n) {
      const std::string id = "r" + std::to_string(next_id++);
      current.push_back(addReplica(*m, config, "app", "d", id));
      ids.push_back(id);
    }
  };
  auto remove = [&](int n) {
    while (static_cast<int>(current.size()) > n) {
      const HttpResult res = m->deregister(ids.back());
      INFO(res.body);
      REQUIRE(res.status == 200);
      removed.push_back(std::move(current.back()));
      current.pop_back();
      ids.pop_back();
    }
    // Slots drain, then free once HAProxy shows them idle.
    REQUIRE(eventually([&] { return occupiedSlots(*m, "app") == n; }));
  };

  add(1);
  BackgroundClient load(m->url("/app"));
  REQUIRE(eventually([&] { return load.count(200) > 20; }));

  for (int target : {8, 2}) {
    CAPTURE(target);
    if (target > static_cast<int>(current.size())) {
      add(target);
    } else {
      remove(target);
    }
    CHECK(activeSlots(*m, "app") == target);
    // Every current replica takes requests; replicas taken out (still running) take none.
    const std::vector<double> deltas = deltasAfterRequests(*m, current, 10 * target);
    for (double d : deltas) {
      CHECK(d > 0);
    }
    for (auto& r : removed) {
      const double before = modelRequests(*r);
      for (int i = 0; i < 10; ++i) {
        REQUIRE(httpPost(m->url("/app"), kInferBody).status == 200);
      }
      CHECK(modelRequests(*r) == before);
    }
    for (auto& r : removed) {
      r->signal(SIGTERM);
      CHECK(r->wait(std::chrono::seconds(10)) == 0);
    }
    removed.clear();
  }
  load.stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
  CHECK(load.count(200) > 0);

  // Zero replicas: the documented 503.
  remove(0);
  for (auto& r : removed) {
    r->signal(SIGTERM);
    r->wait(std::chrono::seconds(10));
  }
  removed.clear();
  const HttpResult none = httpPost(m->url("/app"), kInferBody);
  CHECK(none.status == 503);
  CHECK(none.body == "No replica of application 'app' is available.");

  // Back to three: the first request after registration succeeds.
  add(1);
  CHECK(httpPost(m->url("/app"), kInferBody).status == 200);
  BackgroundClient again(m->url("/app"));
  add(3);
  const std::vector<double> deltas = deltasAfterRequests(*m, current, 30);
  for (double d : deltas) {
    CHECK(d > 0);
  }
  again.stop();
  INFO(again.failures());
  CHECK(again.failed() == 0);

  // All of it with the same HAProxy worker, and no reload.
  CHECK(m->workerPid() == worker);
  CHECK(metricValue(httpGet(m->controlUrl("/metrics")).body,
                    "serve_haproxy_reloads_total{reason=\"slots_grown\",result=\"success\"}") ==
        -1);
}

TEST_CASE("manager: a replica killed with SIGKILL is taken out, other requests are redispatched") {
  const auto binaries = haproxyBinaries();
  REQUIRE_FALSE(binaries.empty());
  const std::string config = managerConfig();
  auto m = startManager(config, binaries.front().path);
  auto a = addReplica(*m, config, "app", "d", "a");
  auto b = addReplica(*m, config, "app", "d", "b");
  BackgroundClient load(m->url("/app"), 2);
  REQUIRE(eventually([&] { return load.count(200) > 50; }));

  b->signal(SIGKILL);
  REQUIRE(b->wait(std::chrono::seconds(5)) == -SIGKILL);
  // The manager notices the process is gone and frees the slot.
  CHECK(eventually([&] { return occupiedSlots(*m, "app") == 1; }));
  const long at_free = load.total();
  REQUIRE(eventually([&] { return load.total() > at_free + 100; }));
  load.stop();
  INFO(load.failures());
  // Only requests already inside the killed replica (at most one per client thread) may fail;
  // everything else went to the survivor.
  CHECK(load.failed() <= 2);
  CHECK(metricValue(httpGet(m->controlUrl("/metrics")).body, "serve_haproxy_replicas_lost_total") ==
        1);
  const std::string state = m->admin("show servers state http-app");
  CHECK(state.find("http-app 2 slot2 127.0.0.1") != std::string::npos);  // freed: placeholder
}

TEST_CASE("manager: a request longer than hard-stop-after survives membership changes") {
  const auto binaries = haproxyBinaries();
  REQUIRE_FALSE(binaries.empty());
  const std::string config = managerConfig(/*slow_ms=*/2500);
  auto m =
      startManager(config, binaries.front().path, {{"RAY_SERVE_HAPROXY_HARD_STOP_AFTER_S", "1"}});
  auto slow = addReplica(*m, config, "slow", "s", "slow-1");
  auto a = addReplica(*m, config, "app", "d", "a");
  const int worker = m->workerPid();

  HttpResult long_request;
  std::thread client([&] { long_request = httpPost(m->url("/slow"), kInferBody); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // Membership churn during the request: add and remove replicas of both applications.
  auto b = addReplica(*m, config, "app", "d", "b");
  auto slow2 = addReplica(*m, config, "slow", "s", "slow-2");
  CHECK(m->deregister("a").status == 200);
  CHECK(m->deregister("slow-2").status == 200);
  client.join();
  CHECK(long_request.status == 200);
  CHECK(long_request.body.find("\"model_name\":\"sleeper\"") != std::string::npos);
  CHECK(long_request.seconds > 2.4);
  CHECK(m->workerPid() == worker);
}

}  // namespace
}  // namespace serve::testing
