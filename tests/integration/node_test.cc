// One node end to end: haproxy-manager runs the replicas itself (no registration by the test),
// from the shipped examples/serve.yaml, and keeps serving through replica crashes, an HAProxy
// crash and rolling deploys. Real processes on loopback.
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "tests/integration/manager_fixture.h"
#include "tests/support/digits.h"
#include "tests/support/json_file.h"

namespace serve::testing {
namespace {

std::string digitsBody(const nlohmann::json& pixels) {
  return nlohmann::json{
      {"inputs", {{{"name", "input"}, {"shape", {1, 64}}, {"datatype", "FP32"}, {"data", pixels}}}}}
      .dump();
}

TEST_CASE("node: examples/serve.yaml alone serves the digits classifier at both paths") {
  auto m = startNode("", std::string(SERVE_SOURCE_DIR) + "/examples/serve.yaml");
  REQUIRE(eventually([&] { return allServing(*m, "digits", 2); }, std::chrono::seconds(30)));
  REQUIRE(m->httpPort() > 0);
  const nlohmann::json expected = readJson(std::string(SERVE_SOURCE_DIR) + "/models/digits.json");
  const std::string base = "http://127.0.0.1:8000";  // the port the example config names
  int checked = 0;
  for (const auto& sample : expected["heldout"]) {
    for (const std::string path : {"/digits", "/v2/models/digits/infer"}) {
      const HttpResult r = httpPost(base + path, digitsBody(sample["inputs"]));
      INFO(path, " ", r.body);
      REQUIRE(r.status == 200);
      const auto reply = nlohmann::json::parse(r.body);
      CHECK(reply["model_name"] == "digits");
      CHECK(argmax(reply["outputs"][0]["data"]) == sample["predicted"].get<int>());
      ++checked;
    }
  }
  CHECK(checked == 2 * static_cast<int>(expected["heldout"].size()));
  CHECK(httpGet(base + "/-/routes").body ==
        R"({"/digits":"digits","/echo":"echo","/slow":"slow"})");
}

TEST_CASE("node: a replica killed with SIGKILL under load is restarted into its slot") {
  const std::string config = managerConfig();
  auto m = startNode(config);
  REQUIRE(eventually([&] { return allServing(*m, "app", 1); }));
  BackgroundClient load(m->url("/app"), 2);
  REQUIRE(eventually([&] { return load.count(200) > 50; }));
  const auto before = processes(*m, "app");
  const int pid = before.begin()->second.second;
  ::kill(pid, SIGKILL);
  // Restarted (new pid), ready, and back in a slot.
  CHECK(eventually([&] {
    const auto now = processes(*m, "app");
    return now.size() == 1 && now.begin()->second.first == "serving" &&
           now.begin()->second.second != pid && activeSlots(*m, "app") == 1;
  }));
  const long settled = load.total();
  REQUIRE(eventually([&] { return load.total() > settled + 50; }));
  load.stop();
  INFO(load.failures());
  // The only replica died: requests inside it fail, and the ones arriving while none is up
  // get the documented 503 until the restart (about a second of backoff).
  const long errors = load.failed();
  CHECK(errors == load.count(503) + load.count(502));
  CHECK(load.count(200) > 100);
  CHECK(m->status()["replica_restarts"] == 1);
  CHECK(metricValue(httpGet(m->controlUrl("/metrics")).body, "serve_replica_restarts_total") == 1);
}

TEST_CASE("node: a replica restarted after a refused deploy runs the config in force") {
  auto m = startNode(oneAppConfig("model: {kind: noop, name: echo}"));
  REQUIRE(eventually([&] { return allServing(*m, "app", 1); }, std::chrono::seconds(30)));
  // The operator edits the file the node was started from and deploys it; the node refuses it.
  const std::string file = m->dir() + "/serve.yaml";
  std::string text;
  {
    std::ifstream in(file);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::string noop = "{kind: noop, name: echo}";
  REQUIRE(text.find(noop) != std::string::npos);
  text.replace(text.find(noop), noop.size(), "{kind: mlp, name: echo, path: missing.safetensors}");
  std::ofstream(file) << text;
  const HttpResult refused = m->deploy(text);
  INFO(refused.body);
  CHECK(refused.status == 400);
  CHECK(refused.body.find("model file missing.safetensors not found") != std::string::npos);
  // The replica dies and is restarted: it runs the config in force (echo), not the file.
  const int pid = processes(*m, "app").begin()->second.second;
  ::kill(pid, SIGKILL);
  REQUIRE(eventually(
      [&] {
        const auto now = processes(*m, "app");
        return now.size() == 1 && now.begin()->second.second != pid && allServing(*m, "app", 1);
      },
      std::chrono::seconds(20)));
  const HttpResult echo = httpPost(m->url("/app"), kInferBody);
  CHECK(echo.status == 200);
  CHECK(echo.body.find(R"("model_name":"echo")") != std::string::npos);
  const nlohmann::json status = m->status();
  for (const auto& d : status["deployments"]) {
    CHECK(d["state"] == "running");
  }
}

TEST_CASE("node: with two replicas, one killed under load costs at most the requests inside it") {
  const std::string two = oneAppConfig("num_replicas: 2, model: {kind: noop, name: echo}");
  auto m = startNode(two);
  REQUIRE(eventually([&] { return allServing(*m, "app", 2); }));
  BackgroundClient load(m->url("/app"), 2);
  REQUIRE(eventually([&] { return load.count(200) > 50; }));
  const int pid = processes(*m, "app").begin()->second.second;
  ::kill(pid, SIGKILL);
  CHECK(eventually([&] { return allServing(*m, "app", 2); }));
  const long settled = load.total();
  REQUIRE(eventually([&] { return load.total() > settled + 100; }));
  load.stop();
  INFO(load.failures());
  // At most one request per client thread was inside the killed replica.
  CHECK(load.failed() <= 2);
}

TEST_CASE("node: a manager killed with SIGKILL under load is adopted by the next one") {
  const std::string two = oneAppConfig("num_replicas: 2, model: {kind: noop, name: echo}");
  auto m = startNode(two);
  REQUIRE(eventually([&] { return allServing(*m, "app", 2); }));
  const int master = m->status()["haproxy"]["master_pid"].get<int>();
  const auto before = processes(*m, "app");
  BackgroundClient load(m->url("/app"), 2);
  REQUIRE(eventually([&] { return load.count(200) > 50; }));

  m->signal(SIGKILL);
  REQUIRE(m->wait(std::chrono::seconds(5)) == -SIGKILL);
  // Nobody manages the node for a while; HAProxy and the replicas keep serving.
  const long at_kill = load.total();
  REQUIRE(eventually([&] { return load.total() > at_kill + 100; }));
  const bool restarted = m->startAgain();
  INFO(m->output());
  REQUIRE(restarted);
  CHECK(m->output().find("adopted HAProxy master " + std::to_string(master)) != std::string::npos);
  CHECK(m->status()["haproxy"]["master_pid"] == master);
  CHECK(processes(*m, "app") == before);  // same replicas (ids and pids): no duplicates
  CHECK(allServing(*m, "app", 2));
  const long adopted = load.total();
  REQUIRE(eventually([&] { return load.total() > adopted + 100; }));
  load.stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
}

TEST_CASE("node: a successor goes on with the config last deployed, not the file it starts with") {
  const std::string two = oneAppConfig("num_replicas: 2, model: {kind: noop, name: echo}");
  std::string three = two;
  three.replace(three.find("num_replicas: 2"), 15, "num_replicas: 3");
  auto m = startNode(two);
  REQUIRE(eventually([&] { return allServing(*m, "app", 2); }));
  REQUIRE(m->deploy(three).status == 200);
  REQUIRE(eventually([&] { return allServing(*m, "app", 3); }));
  const auto deployed = processes(*m, "app");
  REQUIRE(deployed.size() == 3);
  BackgroundClient load(m->url("/app"), 2);
  REQUIRE(eventually([&] { return load.count(200) > 50; }));

  // Killed, and started again by whatever started it: with its own file, two replicas.
  m->signal(SIGKILL);
  REQUIRE(m->wait(std::chrono::seconds(5)) == -SIGKILL);
  const bool restarted = m->startAgain();
  INFO(m->output());
  REQUIRE(restarted);
  CHECK(m->output().find("going on with the config in force on this node") != std::string::npos);
  // Long enough for a rollback to two replicas to show: the deployed three stay, untouched.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  CHECK(processes(*m, "app") == deployed);
  CHECK(allServing(*m, "app", 3));
  const long adopted = load.total();
  REQUIRE(eventually([&] { return load.total() > adopted + 100; }));
  load.stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);

  // A node stopped and started afresh runs its start file: nothing runs to go on with.
  m->signal(SIGTERM);
  REQUIRE(m->wait(std::chrono::seconds(30)) == 0);
  REQUIRE(m->startAgain());
  CHECK(eventually([&] { return allServing(*m, "app", 2); }));
  CHECK(processes(*m, "app").size() == 2);
}

TEST_CASE("node: a killed HAProxy master is back within 2 s, routing to the current replicas") {
  auto m = startNode(managerConfig());
  REQUIRE(eventually([&] { return allServing(*m, "app", 1); }));
  const int master = m->status()["haproxy"]["master_pid"].get<int>();
  const int worker = m->workerPid();
  ::kill(master, SIGKILL);
  ::kill(worker, SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  // Until the new HAProxy listens nothing answers; from its first answer on, every answer must
  // be the model's. A restart from stale files (the slots as they were at the last reload, here
  // all disabled, since the replica joined at runtime) answered 503 until drift repair.
  HttpResult first;
  REQUIRE(eventually(
      [&] {
        first = httpPost(m->url("/app"), kInferBody);
        return first.status != 0;
      },
      std::chrono::seconds(5), std::chrono::milliseconds(2)));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  CHECK(seconds < 2.0);
  std::map<long, int> answers{{first.status, 1}};
  for (int i = 0; i < 200; ++i) {
    answers[httpPost(m->url("/app"), kInferBody).status] += 1;
  }
  std::string seen;
  for (const auto& [status, count] : answers) {
    seen += std::to_string(status) + ": " + std::to_string(count) + " ";
  }
  INFO("answers by status: ", seen);
  CHECK(answers == std::map<long, int>{{200, 201}});
}

TEST_CASE("node: a rolling deploy under load has no non-2xx answer and retires the old replicas") {
  const std::string v1 =
      oneAppConfig("num_replicas: 2, max_ongoing_requests: 8, model: {kind: noop, name: echo}");
  std::string v2 = v1;
  v2.replace(v2.find("max_ongoing_requests: 8"), 23, "max_ongoing_requests: 6");
  auto m = startNode(v1);
  REQUIRE(eventually([&] { return allServing(*m, "app", 2); }));
  const auto old = processes(*m, "app");
  BackgroundClient load(m->url("/app"), 2);
  REQUIRE(eventually([&] { return load.count(200) > 50; }));
  const HttpResult deployed = m->deploy(v2);
  INFO(deployed.body);
  CHECK(deployed.status == 200);
  // New replicas replace the old ones one at a time.
  CHECK(eventually(
      [&] {
        const auto now = processes(*m, "app");
        if (now.size() != 2 || !allServing(*m, "app", 2)) {
          return false;
        }
        for (const auto& [id, p] : now) {
          if (old.count(id) > 0) {
            return false;
          }
        }
        return true;
      },
      std::chrono::seconds(30)));
  const long settled = load.total();
  REQUIRE(eventually([&] { return load.total() > settled + 50; }));
  load.stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
  for (const auto& [id, p] : old) {
    CHECK(::kill(p.second, 0) != 0);  // the old processes are gone
  }
}

TEST_CASE("node: bad configs are refused before anything changes") {
  const std::string config = managerConfig();
  auto m = startNode(config);
  REQUIRE(eventually([&] { return allServing(*m, "app", 1); }));
  const auto before = processes(*m, "app");
  const int worker = m->workerPid();

  const std::string gpu_hungry = oneAppConfig(
      "num_replicas: 2, ray_actor_options: {num_gpus: 1}, model: {kind: noop, name: echo}");
  HttpResult r = m->deploy(gpu_hungry);
  CHECK(r.status == 409);
  CHECK(r.body.find("the config needs 2 GPUs (app.d: 2 replicas x 1) but this node has 0") !=
        std::string::npos);

  std::string duplicate_route = config;
  duplicate_route.replace(duplicate_route.find("route_prefix: /slow"), 19, "route_prefix: /app");
  r = m->deploy(duplicate_route);
  CHECK(r.status == 400);
  CHECK(r.body.find("duplicate route prefix") != std::string::npos);

  r = m->deploy(config + "unknown_key: 1\n");
  CHECK(r.status == 400);
  CHECK(r.body.find("unknown key") != std::string::npos);

  std::string missing_model = config;
  missing_model.replace(missing_model.find("model: {kind: noop, name: echo}"), 31,
                        "model: {kind: mlp, name: echo, path: /nonexistent/m.safetensors}");
  r = m->deploy(missing_model);
  CHECK(r.status == 400);
  CHECK(r.body.find("model file /nonexistent/m.safetensors not found") != std::string::npos);

  // Untouched: same replicas, same HAProxy worker, still serving.
  CHECK(processes(*m, "app") == before);
  CHECK(m->workerPid() == worker);
  CHECK(httpPost(m->url("/app"), kInferBody).status == 200);
}

}  // namespace
}  // namespace serve::testing

namespace serve::testing {
namespace {

TEST_CASE("node: max_queued_requests bounds HAProxy's queue; the next request gets 503 at once") {
  // One replica taking one request at a time for 1.5 s; two may wait for it.
  // With a gRPC listener, so HAProxy checks the gRPC backend's rules too.
  auto m = startNode("grpc_options: {port: {{GRPC_PORT}}}\n" +
                     oneAppConfig("num_replicas: 1, max_ongoing_requests: 1, "
                                  "max_queued_requests: 2, "
                                  "model: {kind: sleep, sleep_ms: 1500, name: sleeper}"));
  REQUIRE(eventually([&] { return allServing(*m, "app", 1); }));
  std::vector<std::future<HttpResult>> calls;
  for (int i = 0; i < 5; ++i) {  // one at a time, so each sees the queue the last one left
    calls.push_back(
        std::async(std::launch::async, [&] { return httpPost(m->url("/app"), kInferBody); }));
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  }
  std::vector<long> statuses;
  for (auto& call : calls) {
    const HttpResult r = call.get();
    statuses.push_back(r.status);
    if (r.status == 503) {
      CHECK(r.body ==
            "Application 'app' has 2 request(s) waiting (max_queued_requests); try again later.");
      CHECK(r.seconds < 1.0);  // turned away at once, not after waiting
    }
  }
  // The first is served, the next two wait their turn, the last two find the queue full.
  CHECK(statuses == std::vector<long>{200, 200, 200, 503, 503});
}

// The manager is killed (SIGKILL, by SERVE_TEST_CRASH_AT) at one step of a rolling deploy of two
// replicas under load, and a successor starts with the node's original file. It must rebuild the
// node from what runs (HAProxy's servers, the registrations, the replicas' state file), finish the
// deploy, leave no replica without a slot and no process behind, and fail no request.
void killedMidDeploy(const std::string& crash_at) {
  const std::string v1 =
      oneAppConfig("num_replicas: 2, max_ongoing_requests: 8, model: {kind: noop, name: echo}");
  std::string v2 = v1;
  v2.replace(v2.find("max_ongoing_requests: 8"), 23, "max_ongoing_requests: 6");
  auto m = startNode(v1, "", {{"SERVE_TEST_CRASH_AT", crash_at}});
  REQUIRE(eventually([&] { return allServing(*m, "app", 2); }));
  const auto old = processes(*m, "app");
  BackgroundClient load(m->url("/app"), 2);
  REQUIRE(eventually([&] { return load.count(200) > 50; }));

  const HttpResult deployed = m->deploy(v2);  // no answer when the kill comes first
  CHECK((deployed.status == 200 || deployed.status == 0));
  const std::optional<int> exit = m->wait(std::chrono::seconds(20));
  INFO(m->output());
  REQUIRE(exit == -SIGKILL);
  CHECK(m->output().find("crash point " + crash_at.substr(0, crash_at.find(':'))) !=
        std::string::npos);

  // Unmanaged for a moment; then a restart with the file the node was started with. The deploy
  // was recorded as in force before anything changed, so the successor finishes it.
  const long at_kill = load.total();
  REQUIRE(eventually([&] { return load.total() > at_kill + 20; }));
  const bool restarted = m->startAgain();
  INFO(m->output());
  REQUIRE(restarted);
  // Converged: two new replicas serving in two slots, no old one, and no process that no
  // manager knows.
  const bool converged = eventually(
      [&] {
        const auto now = processes(*m, "app");
        if (now.size() != 2 || !allServing(*m, "app", 2)) {
          return false;
        }
        std::set<int> pids;
        for (const auto& [id, p] : now) {
          if (old.count(id) > 0) {
            return false;
          }
          pids.insert(p.second);
        }
        return m->replicaPids() == pids;
      },
      std::chrono::seconds(60));
  INFO(m->status().dump());
  std::string running;
  for (int pid : m->replicaPids()) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    running += std::to_string(pid) + ": " + cmdline + "\n";
  }
  INFO("replica processes running:\n", running);
  CHECK(converged);
  const long settled = load.total();
  REQUIRE(eventually([&] { return load.total() > settled + 50; }));
  load.stop();
  INFO(load.failures());
  CHECK(load.failed() == 0);
}

TEST_CASE("node: manager killed mid-deploy after writing the snapshot") {
  killedMidDeploy("deploy.snapshot_written");
}
TEST_CASE("node: manager killed mid-deploy after routing changed, before the replicas did") {
  killedMidDeploy("deploy.routes_applied");
}
TEST_CASE("node: manager killed mid-deploy after spawning the first new replica") {
  killedMidDeploy("supervisor.replica_spawned");
}
TEST_CASE("node: manager killed mid-deploy after changing HAProxy, before recording it") {
  killedMidDeploy("manager.runtime_applied");
}
TEST_CASE("node: manager killed mid-deploy while registering the first new replica") {
  killedMidDeploy("manager.runtime_applied:2");
}
TEST_CASE("node: manager killed mid-deploy after registering the first new replica") {
  killedMidDeploy("supervisor.replica_registered");
}
TEST_CASE("node: manager killed mid-deploy after taking the first old replica out of its slot") {
  killedMidDeploy("supervisor.replica_deregistered");
}
TEST_CASE("node: manager killed mid-deploy after telling the first old replica to stop") {
  killedMidDeploy("supervisor.replica_stopping");
}
TEST_CASE("node: manager killed mid-deploy after spawning the second new replica") {
  killedMidDeploy("supervisor.replica_spawned:2");
}
TEST_CASE("node: manager killed mid-deploy after registering the second new replica") {
  killedMidDeploy("supervisor.replica_registered:2");
}

}  // namespace
}  // namespace serve::testing
