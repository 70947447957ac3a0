#include "haproxy-manager/supervise/replica_supervisor.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"
#include "tests/support/scratch_dir.h"

// The supervisor driven tick by tick (runOnce) on a ManualClock, with fakes for everything it
// acts through. One log records, in order, what it did to processes (spawn, TERM, KILL) and to the
// registry (register, deregister, restart counted); the cases assert that log exactly, tick by
// tick, the way the differ's cases assert HAProxy commands.
namespace serve::manager {
namespace {

using namespace std::chrono_literals;
using Calls = std::vector<std::string>;
using Json = nlohmann::json;

// The argument after `flag` in `argv`; "" when absent.
std::string argAfter(const std::vector<std::string>& argv, const std::string& flag) {
  auto it = std::find(argv.begin(), argv.end(), flag);
  return it == argv.end() || it + 1 == argv.end() ? "" : *(it + 1);
}

class FakeRegistry final : public ReplicaRegistry {
 public:
  explicit FakeRegistry(Calls& calls) : calls_(calls) {}

  StatusOr<ApplyOutcome> registerReplica(const ReplicaRegistration& r) override {
    calls_.push_back(
        absl::StrCat("register ", r.replica_id, " pid ", r.pid, " ", r.host, ":", r.http_port));
    if (refuse_registrations) {
      return absl::UnavailableError("refused by the test");
    }
    registered[r.replica_id] = r;
    return ApplyOutcome{"runtime", {}, {}, 0};
  }
  StatusOr<ApplyOutcome> deregisterReplica(const std::string& replica_id) override {
    calls_.push_back("deregister " + replica_id);
    registered.erase(replica_id);
    return ApplyOutcome{"runtime", {}, {}, 0};
  }
  std::vector<ReplicaRegistration> registrations() const override {
    std::vector<ReplicaRegistration> out;
    for (const auto& entry : registered) {
      out.push_back(entry.second);
    }
    return out;
  }
  // Asked every tick while a replica drains, so not logged.
  bool slotReleased(const ReplicaRegistration& r) const override {
    if (held_endpoints.count(absl::StrCat(r.host, ":", r.http_port)) > 0) {
      return false;
    }
    return release_at_once || released.count(r.replica_id) > 0;
  }
  void recordReplicaRestart() override { calls_.push_back("restart counted"); }

  bool release_at_once = true;  // HAProxy shows every drained slot idle at once
  std::set<std::string> released;
  // "host:port" of slots HAProxy runs that no registration names (an earlier manager filled them
  // and died before recording it): they hold whatever listens there until they drain.
  std::set<std::string> held_endpoints;
  bool refuse_registrations = false;
  std::map<std::string, ReplicaRegistration> registered;  // what the routing side holds now

 private:
  Calls& calls_;
};

// Records spawns and signals; the test says when a pid prints something or exits. A spawned
// "process" keeps a duplicate of the pipe and log descriptors it was handed, so what the test
// makes it print reaches the supervisor exactly as a real replica's output would.
class FakeLauncher final : public ProcessLauncher {
 public:
  struct Child {
    std::vector<std::string> argv;
    std::vector<std::string> env;
    int out = -1;
    int err = -1;
    std::optional<int> wait_status;  // set when it exited
    bool reaped = false;
  };

  explicit FakeLauncher(Calls& calls) : calls_(calls) {}
  ~FakeLauncher() override {
    for (auto& [pid, child] : children) {
      closeEnds(child);
    }
  }

  StatusOr<pid_t> spawn(const SpawnRequest& request) override {
    if (fail_spawns) {
      return absl::NotFoundError("No such file or directory");
    }
    const pid_t pid = next_pid_++;
    Child& child = children[pid];
    child.argv = request.argv;
    child.env = request.env.value_or(std::vector<std::string>{});
    child.out = ::fcntl(request.stdout_fd, F_DUPFD_CLOEXEC, 3);
    child.err = ::fcntl(request.stderr_fd, F_DUPFD_CLOEXEC, 3);
    calls_.push_back(absl::StrCat("spawn ", pid, " port ", argAfter(request.argv, "--http-port")));
    return pid;
  }
  bool signal(pid_t pid, int sig) override {
    calls_.push_back(absl::StrCat(sig == SIGTERM   ? "TERM "
                                  : sig == SIGKILL ? "KILL "
                                                   : "signal ",
                                  pid));
    signalled[pid].push_back(sig);
    return true;
  }
  ChildStatus reap(pid_t pid) override {
    auto it = children.find(pid);
    if (it == children.end() || it->second.reaped) {
      return {ChildStatus::State::kNotOurs, 0};
    }
    if (!it->second.wait_status.has_value()) {
      return {ChildStatus::State::kRunning, 0};
    }
    it->second.reaped = true;
    return {ChildStatus::State::kExited, *it->second.wait_status};
  }
  bool running(pid_t pid) override { return foreign.count(pid) > 0; }
  std::string commandLine(pid_t pid) override {
    auto it = foreign.find(pid);
    return it == foreign.end() ? "" : it->second;
  }

  // What the test makes a child do.
  void print(pid_t pid, const std::string& text) { write(children.at(pid).out, text); }
  void printErr(pid_t pid, const std::string& text) { write(children.at(pid).err, text); }
  void printReady(pid_t pid) {
    print(pid, absl::StrCat(R"({"event":"ready","http_port":)",
                            argAfter(children.at(pid).argv, "--http-port"), "}\n"));
  }
  void exit(pid_t pid, int code) { end(pid, W_EXITCODE(code, 0)); }
  void killedBy(pid_t pid, int sig) { end(pid, sig); }

  pid_t lastPid() const { return next_pid_ - 1; }

  std::map<pid_t, Child> children;
  std::map<pid_t, std::vector<int>> signalled;
  std::map<pid_t, std::string> foreign;  // processes we did not start: pid -> command line
  bool fail_spawns = false;

 private:
  static void write(int fd, const std::string& text) {
    REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  }
  static void closeEnds(Child& child) {
    for (int* fd : {&child.out, &child.err}) {
      if (*fd >= 0) {
        ::close(*fd);
        *fd = -1;
      }
    }
  }
  void end(pid_t pid, int wait_status) {
    Child& child = children.at(pid);
    closeEnds(child);
    child.wait_status = wait_status;
  }

  Calls& calls_;
  pid_t next_pid_ = 1000;
};

// Answers control-socket requests from a script. Thread-safe: reconfigures arrive from the
// supervisor's std::async.
class FakeControl final : public ReplicaControl {
 public:
  StatusOr<Json> request(const std::string& socket_path, const Json& request,
                         std::chrono::milliseconds) override {
    std::lock_guard lock(mu_);
    const std::string op = request.value("op", "");
    requests_.push_back(op + " " + std::filesystem::path(socket_path).filename().string());
    if (op == "reconfigure") {
      if (!reconfigure_ok_) {
        return Json{{"ok", false}, {"error", "reconfigure raised ValueError: bad"}};
      }
      return Json{{"ok", true}};
    }
    std::string answer = "healthy";
    if (!health_.empty()) {
      answer = health_.front();
      health_.pop_front();
    }
    if (answer == "no answer") {
      return absl::UnavailableError("connection refused");
    }
    return Json{{"ok", true}, {"state", answer}, {"reason", "check_health raised: " + answer}};
  }

  void answerHealth(std::string state) {
    std::lock_guard lock(mu_);
    health_.push_back(std::move(state));
  }
  void reconfigureSucceeds(bool ok) {
    std::lock_guard lock(mu_);
    reconfigure_ok_ = ok;
  }
  Calls requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  std::mutex mu_;
  std::deque<std::string> health_;
  bool reconfigure_ok_ = true;
  Calls requests_;
};

using TempDir = serve::testing::ScratchDir;

// The supervisor's log lines are noise here; restored afterwards.
struct QuietLogs {
  QuietLogs() : level(spdlog::default_logger()->level()) {
    spdlog::default_logger()->set_level(spdlog::level::off);
  }
  ~QuietLogs() { spdlog::default_logger()->set_level(level); }
  spdlog::level::level_enum level;
};

ServeConfig config(int replicas) {
  DeploymentSpec d;
  d.name = "d";
  d.num_replicas = replicas;
  d.model.kind = "sleep";
  d.graceful_shutdown_timeout_s = 20;
  ApplicationSpec a;
  a.name = "a";
  a.route_prefix = "/a";
  a.deployments = {d};
  ServeConfig c;
  c.applications = {a};
  return c;
}

DeploymentSpec& deployment(ServeConfig& c) { return c.applications[0].deployments[0]; }

SupervisorOptions options(const std::string& log_dir) {
  SupervisorOptions o;
  o.replica_binary = "/opt/serve/serve-replica";
  o.log_dir = log_dir;
  o.replica_env.min_http_port = 30000;
  o.replica_env.max_http_port = 30010;
  o.replica_env.min_grpc_port = 40000;
  o.replica_env.max_grpc_port = 40010;
  return o;
}

// A supervisor with fakes around it. Members in construction order: the supervisor last.
struct Node {
  explicit Node(std::function<void(SupervisorOptions&)> tweak = {}) {
    SupervisorOptions o = options(dir.path);
    if (tweak) {
      tweak(o);
    }
    supervisor = std::make_unique<ReplicaSupervisor>(o, registry, launcher, clock, control);
  }

  void deploy(const ServeConfig& c) {
    supervisor->apply(std::make_shared<const ServeConfig>(c), "/etc/serve/serve.yaml", "");
  }
  // One tick; returns what the supervisor did in it.
  Calls tick() {
    calls.clear();
    supervisor->runOnce();
    return calls;
  }
  // Every replica spawned so far that has not printed anything or exited prints its ready line.
  void allReady() {
    for (auto& [pid, child] : launcher.children) {
      if (child.out >= 0 && !ready.count(pid)) {
        launcher.printReady(pid);
        ready.insert(pid);
      }
    }
  }
  // Every replica that got SIGTERM exits with status 0.
  void termedExit() {
    for (auto& [pid, sigs] : launcher.signalled) {
      if (std::count(sigs.begin(), sigs.end(), SIGTERM) > 0 &&
          !launcher.children.at(pid).wait_status.has_value()) {
        launcher.exit(pid, 0);
      }
    }
  }
  // Deploys `c`, starts its replicas and brings them all into service.
  void serve(const ServeConfig& c) {
    deploy(c);
    tick();
    allReady();
    tick();
  }
  // The replica as status() shows it; an empty view when there is none.
  ReplicaSupervisor::ReplicaView view(const std::string& id) const {
    for (const auto& v : supervisor->replicas()) {
      if (v.id == id) {
        return v;
      }
    }
    return {};
  }
  std::vector<std::string> ids() const {
    std::vector<std::string> out;
    for (const auto& v : supervisor->replicas()) {
      out.push_back(v.id + " " + v.state);
    }
    return out;
  }

  QuietLogs quiet;
  TempDir dir;
  Calls calls;
  ManualClock clock;
  FakeLauncher launcher{calls};
  FakeRegistry registry{calls};
  FakeControl control;
  std::set<pid_t> ready;
  std::unique_ptr<ReplicaSupervisor> supervisor;
};

// ---- (a) Rolling updates ----------------------------------------------------------------------

struct RollCase {
  const char* name;
  int replicas;
  std::function<void(ServeConfig&)> change;
  std::vector<Calls> ticks;  // what each tick after the change does, until nothing happens
};

std::vector<RollCase> rollCases() {
  auto spec_change = [](ServeConfig& c) { deployment(c).model.sleep_ms = 5; };
  std::vector<RollCase> out;
  out.push_back({"one replica: the new one serves before the old one leaves its slot",
                 1,
                 spec_change,
                 {{"spawn 1001 port 30001"},
                  {"register a.d.1 pid 1001 127.0.0.1:30001", "deregister a.d.0"},
                  {"TERM 1000"},
                  {}}});
  out.push_back({"two replicas are replaced one at a time",
                 2,
                 spec_change,
                 {{"spawn 1002 port 30002"},
                  {"register a.d.2 pid 1002 127.0.0.1:30002", "deregister a.d.0"},
                  {"TERM 1000", "spawn 1003 port 30003"},
                  {"register a.d.3 pid 1003 127.0.0.1:30003", "deregister a.d.1"},
                  {"TERM 1001"},
                  {}}});
  out.push_back({"three replicas: never more than one extra, never fewer than three serving",
                 3,
                 spec_change,
                 {{"spawn 1003 port 30003"},
                  {"register a.d.3 pid 1003 127.0.0.1:30003", "deregister a.d.0"},
                  {"TERM 1000", "spawn 1004 port 30004"},
                  {"register a.d.4 pid 1004 127.0.0.1:30004", "deregister a.d.1"},
                  {"TERM 1001", "spawn 1005 port 30005"},
                  {"register a.d.5 pid 1005 127.0.0.1:30005", "deregister a.d.2"},
                  {"TERM 1002"},
                  {}}});
  out.push_back({"a change that also scales 3 -> 1: the old ones serve until a new one does",
                 3,
                 [](ServeConfig& c) {
                   deployment(c).model.sleep_ms = 5;
                   deployment(c).num_replicas = 1;
                 },
                 {{"spawn 1003 port 30003"},
                  {"register a.d.3 pid 1003 127.0.0.1:30003", "deregister a.d.0"},
                  {"TERM 1000", "deregister a.d.1"},
                  {"TERM 1001", "deregister a.d.2"},
                  {"TERM 1002"},
                  {}}});
  out.push_back({"an http_options timeout is part of what a replica reads: it rolls too",
                 1,
                 [](ServeConfig& c) { c.http_options.request_timeout_s = 7; },
                 {{"spawn 1001 port 30001"},
                  {"register a.d.1 pid 1001 127.0.0.1:30001", "deregister a.d.0"},
                  {"TERM 1000"},
                  {}}});
  out.push_back({"a user_config change without control sockets rolls like a spec change",
                 1,
                 [](ServeConfig& c) { deployment(c).user_config_json = R"({"k":1})"; },
                 {{"spawn 1001 port 30001"},
                  {"register a.d.1 pid 1001 127.0.0.1:30001", "deregister a.d.0"},
                  {"TERM 1000"},
                  {}}});
  out.push_back({"scaling 3 -> 1 retires the newest two at once, no roll",
                 3,
                 [](ServeConfig& c) { deployment(c).num_replicas = 1; },
                 {{"deregister a.d.2", "deregister a.d.1"}, {"TERM 1001", "TERM 1002"}, {}}});
  out.push_back(
      {"scaling 1 -> 3 starts two at once",
       1,
       [](ServeConfig& c) { deployment(c).num_replicas = 3; },
       {{"spawn 1001 port 30001", "spawn 1002 port 30002"},
        {"register a.d.1 pid 1001 127.0.0.1:30001", "register a.d.2 pid 1002 127.0.0.1:30002"},
        {}}});
  out.push_back({"an application removed from the config drains all its replicas",
                 2,
                 [](ServeConfig& c) { c.applications.clear(); },
                 {{"deregister a.d.0", "deregister a.d.1"}, {"TERM 1000", "TERM 1001"}, {}}});
  return out;
}

TEST_CASE("supervisor: rolling updates and scaling, call by call") {
  for (const RollCase& c : rollCases()) {
    CAPTURE(c.name);
    Node node;
    ServeConfig before = config(c.replicas);
    node.serve(before);
    ServeConfig after = before;
    c.change(after);
    node.deploy(after);
    // Between ticks every new replica becomes ready at once, HAProxy frees drained slots at
    // once, and every replica told to stop exits.
    std::vector<Calls> ticks;
    for (std::size_t i = 0; i < c.ticks.size(); ++i) {
      ticks.push_back(node.tick());
      node.allReady();
      node.termedExit();
    }
    CHECK(ticks == c.ticks);
    CHECK(node.tick().empty());  // settled
    const int wanted = after.applications.empty() ? 0 : deployment(after).num_replicas;
    CHECK(static_cast<int>(node.supervisor->replicas().size()) == wanted);
  }
}

TEST_CASE("supervisor: the first deploy starts every replica and registers each once ready") {
  Node node;
  node.deploy(config(2));
  CHECK(node.tick() == Calls{"spawn 1000 port 30000", "spawn 1001 port 30001"});
  CHECK(node.tick().empty());  // not ready yet: nothing registered
  node.launcher.print(1001, "loading\n{\"event\":\"ready\",\"http_port\":30001}\n");
  CHECK(node.tick() == Calls{"register a.d.1 pid 1001 127.0.0.1:30001"});
  node.launcher.printReady(1000);
  CHECK(node.tick() == Calls{"register a.d.0 pid 1000 127.0.0.1:30000"});
  CHECK(node.ids() == std::vector<std::string>{"a.d.0 serving", "a.d.1 serving"});
}

// ---- (b), (c) Restart backoff and its reset ---------------------------------------------------

// One run of the replica: how long it lived, whether it served first, and the delay after which
// the supervisor must start it again.
struct Life {
  std::chrono::milliseconds lived;
  bool served;
  double restart_after_s;
};

struct BackoffCase {
  const char* name;
  double initial_s;
  double max_s;
  std::vector<Life> lives;
};

std::vector<BackoffCase> backoffCases() {
  const Life crash_at_start{0ms, false, 0};
  auto crashes = [&](std::vector<double> delays) {
    std::vector<Life> out;
    for (double d : delays) {
      out.push_back({crash_at_start.lived, false, d});
    }
    return out;
  };
  std::vector<BackoffCase> out;
  out.push_back({"a replica that keeps failing to start: 1, 2, 4, 8, 16, 30, 30 s (docs)", 1, 30,
                 crashes({1, 2, 4, 8, 16, 30, 30})});
  out.push_back({"backoff_initial_s and backoff_max_s shape the sequence", 0.5, 3,
                 crashes({0.5, 1, 2, 3, 3})});
  {
    std::vector<Life> lives = crashes({1, 2, 4});
    lives.push_back({61000ms, true, 1});  // served over 60 s, then crashed: starts over
    lives.push_back({0ms, false, 2});     // and doubles again from there
    out.push_back({"a crash after 60 s of service starts over at the initial delay", 1, 30, lives});
  }
  {
    std::vector<Life> lives = crashes({1, 2, 4});
    lives.push_back({5000ms, true, 8});  // served 5 s only: no reset
    out.push_back({"a crash soon after becoming ready keeps doubling", 1, 30, lives});
  }
  {
    std::vector<Life> lives = crashes({1, 2, 4});
    lives.push_back({61000ms, false, 8});
    out.push_back(
        {"a start attempt that lasted over 60 s is not service: keeps doubling", 1, 30, lives});
  }
  {
    std::vector<Life> lives = crashes({1, 2, 4});
    lives.push_back({59000ms, false, 8});
    out.push_back({"a start attempt under backoff_reset_after_s keeps doubling", 1, 30, lives});
  }
  return out;
}

TEST_CASE("supervisor: restart backoff, exact to the millisecond, and its reset") {
  for (const BackoffCase& c : backoffCases()) {
    CAPTURE(c.name);
    Node node([&](SupervisorOptions& o) {
      o.backoff_initial_s = c.initial_s;
      o.backoff_max_s = c.max_s;
      o.port_quarantine = 0ms;
    });
    node.deploy(config(1));
    REQUIRE(node.tick() == Calls{"spawn 1000 port 30000"});
    int restarts = 0;
    for (const Life& life : c.lives) {
      CAPTURE(restarts);
      const pid_t pid = node.launcher.lastPid();
      if (life.served) {
        node.launcher.printReady(pid);
        REQUIRE(node.tick().size() == 1);  // registered
      }
      node.clock.advance(life.lived);
      node.launcher.exit(pid, 1);
      Calls expected_exit{"restart counted"};
      if (life.served) {
        expected_exit.insert(expected_exit.begin(), "deregister a.d.0");
      }
      CHECK(node.tick() == expected_exit);
      ++restarts;
      CHECK(node.view("a.d.0").state == "backoff");
      CHECK(node.view("a.d.0").last_error == "exited unexpectedly (exit code 1)");
      const auto delay = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(life.restart_after_s));
      node.clock.advance(delay - 1ms);
      CHECK(node.tick().empty());
      node.clock.advance(1ms);
      CHECK(node.tick() == Calls{absl::StrCat("spawn ", pid + 1, " port 30000")});
    }
    CHECK(node.supervisor->restartsTotal() == restarts);
  }
}

TEST_CASE("supervisor: a replica's own failure message becomes its last error") {
  Node node;
  node.deploy(config(1));
  node.tick();
  node.launcher.print(1000, R"({"event":"failed","error":"model file not found"})"
                            "\n");
  node.launcher.exit(1000, 1);
  CHECK(node.tick() == Calls{"restart counted"});
  CHECK(node.view("a.d.0").last_error == "failed to start: model file not found");
  CHECK(node.view("a.d.0").restarts == 1);
}

TEST_CASE("supervisor: a replica killed by a signal is restarted and says so") {
  Node node;
  node.serve(config(1));
  node.launcher.killedBy(1000, SIGSEGV);
  CHECK(node.tick() == Calls{"deregister a.d.0", "restart counted"});
  CHECK(node.view("a.d.0").last_error == "exited unexpectedly (signal 11)");
}

// ---- (d) Unhealthy replicas -------------------------------------------------------------------

struct HealthCase {
  const char* name;
  std::vector<std::string> answers;  // one per poll
  bool replaced;
};

std::vector<HealthCase> healthCases() {
  return {
      {"three unhealthy answers in a row replace it",
       {"unhealthy", "unhealthy", "unhealthy"},
       true},
      {"two are not enough", {"unhealthy", "unhealthy"}, false},
      {"a healthy answer starts the count over",
       {"unhealthy", "unhealthy", "healthy", "unhealthy", "unhealthy"},
       false},
      {"no answer counts as healthy (HAProxy's checks take a wedged replica out)",
       {"unhealthy", "unhealthy", "no answer", "unhealthy", "unhealthy"},
       false},
      {"draining counts as healthy", {"unhealthy", "draining", "unhealthy", "unhealthy"}, false},
      {"after a healthy start", {"healthy", "unhealthy", "unhealthy", "unhealthy"}, true},
  };
}

TEST_CASE("supervisor: an unhealthy replica is replaced new-first") {
  for (const HealthCase& c : healthCases()) {
    CAPTURE(c.name);
    Node node([](SupervisorOptions& o) { o.control_dir = "/run/serve/replica-control"; });
    node.serve(config(1));
    for (const std::string& answer : c.answers) {
      node.control.answerHealth(answer);
    }
    std::vector<Calls> polls;
    for (std::size_t i = 0; i < c.answers.size(); ++i) {
      node.clock.advance(1s);  // health_poll_period
      polls.push_back(node.tick());
    }
    CHECK(node.control.requests() == Calls(c.answers.size(), "health a.d.0.sock"));
    std::vector<Calls> quiet(c.answers.size());
    if (!c.replaced) {
      CHECK(polls == quiet);
      CHECK(node.view("a.d.0").last_error.empty());
      continue;
    }
    // The poll that saw the third "unhealthy" starts the replacement; the old one serves on.
    quiet.back() = {"spawn 1001 port 30001"};
    CHECK(polls == quiet);
    CHECK(node.view("a.d.0").last_error == "unhealthy: check_health raised: unhealthy");
    CHECK(node.view("a.d.0").state == "serving");
    node.launcher.printReady(1001);
    CHECK(node.tick() == Calls{"register a.d.1 pid 1001 127.0.0.1:30001", "deregister a.d.0"});
    CHECK(node.tick() == Calls{"TERM 1000"});
    node.launcher.exit(1000, 0);
    CHECK(node.tick().empty());  // stopped on purpose: no restart
    CHECK(node.ids() == std::vector<std::string>{"a.d.1 serving"});
  }
}

TEST_CASE("supervisor: health polls follow health_poll_period on the clock") {
  Node node([](SupervisorOptions& o) {
    o.control_dir = "/run/serve/replica-control";
    o.health_poll_period = 2500ms;
  });
  node.serve(config(1));
  node.clock.advance(2499ms);
  node.tick();
  CHECK(node.control.requests().empty());
  node.clock.advance(1ms);
  node.tick();
  node.tick();  // at most one poll per period
  CHECK(node.control.requests() == Calls{"health a.d.0.sock"});
}

// ---- (e) Drains, deadlines, ports, adoption, reconfigure, stop --------------------------------

TEST_CASE("supervisor: SIGTERM waits for the slot to drain or graceful_shutdown_timeout_s") {
  Node node;
  node.registry.release_at_once = false;
  ServeConfig c = config(2);
  node.serve(c);
  deployment(c).num_replicas = 0;
  node.deploy(c);
  CHECK(node.tick() == Calls{"deregister a.d.1", "deregister a.d.0"});
  CHECK(node.tick().empty());  // both slots still drain
  node.clock.advance(5s);
  node.registry.released.insert("a.d.1");
  CHECK(node.tick() == Calls{"TERM 1001"});
  node.clock.advance(15s);
  CHECK(node.tick().empty());  // a.d.0 has drained for exactly 20 s: not over the timeout
  node.clock.advance(1ms);
  CHECK(node.tick() == Calls{"TERM 1000"});
  // a.d.1 ignores SIGTERM: SIGKILL once graceful_shutdown_timeout_s has passed since it.
  node.clock.advance(4999ms);
  CHECK(node.tick().empty());
  node.clock.advance(1ms);
  CHECK(node.tick() == Calls{"KILL 1001"});
  node.launcher.killedBy(1001, SIGKILL);
  node.launcher.exit(1000, 0);
  CHECK(node.tick().empty());  // both gone, neither restarted
  CHECK(node.supervisor->replicas().empty());
}

TEST_CASE("supervisor: a replica silent for ready_timeout_s is killed, then restarted") {
  Node node([](SupervisorOptions& o) { o.ready_timeout_s = 30; });
  node.deploy(config(1));
  node.tick();
  node.clock.advance(30s);
  CHECK(node.tick().empty());
  node.clock.advance(1ms);
  CHECK(node.tick() == Calls{"KILL 1000"});
  node.launcher.killedBy(1000, SIGKILL);
  CHECK(node.tick() == Calls{"restart counted"});
  CHECK(node.view("a.d.0").last_error == "exited unexpectedly (signal 9)");
}

TEST_CASE("supervisor: a port another process holds is blocked, and that is not a crash") {
  struct Case {
    const char* name;
    std::string stderr_text;  // the replica's last words
    Calls next;               // the tick that reaps it
    std::string next_port;    // the HTTP port of the replica started next
  };
  const std::vector<Case> cases = {
      {"bind failure: another port at once, no restart counted",
       "error: --http-port 30000: bind: Address already in use\n",
       {"spawn 1001 port 30001"},
       "30001"},
      {"any other exit: backoff, and the port is used again after its quarantine",
       "error: model file not found\n",
       {"restart counted"},
       "30000"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    Node node([](SupervisorOptions& o) { o.port_quarantine = 0ms; });
    node.deploy(config(1));
    node.tick();
    node.launcher.printErr(1000, c.stderr_text);
    node.launcher.exit(1000, 1);
    CHECK(node.tick() == c.next);
    node.clock.advance(1s);
    node.tick();
    CHECK(argAfter(node.launcher.children.at(1001).argv, "--http-port") == c.next_port);
  }
}

TEST_CASE("supervisor: a refused registration stops the replica and starts another") {
  Node node;
  node.registry.refuse_registrations = true;
  node.deploy(config(1));
  node.tick();
  node.launcher.printReady(1000);
  CHECK(node.tick() ==
        Calls{"register a.d.0 pid 1000 127.0.0.1:30000", "TERM 1000", "spawn 1001 port 30001"});
}

TEST_CASE("supervisor: a binary that cannot be run backs off with the reason") {
  Node node;
  node.launcher.fail_spawns = true;
  node.deploy(config(1));
  CHECK(node.tick().empty());
  CHECK(node.view("a.d.0").state == "backoff");
  CHECK(node.view("a.d.0").last_error ==
        "cannot run /opt/serve/serve-replica: No such file or directory");
  node.launcher.fail_spawns = false;
  node.clock.advance(1s);
  // Its first port went back into quarantine like any released one.
  CHECK(node.tick() == Calls{"spawn 1000 port 30001"});
}

TEST_CASE("supervisor: the replica's command line and environment") {
  Node node([](SupervisorOptions& o) { o.control_dir = "/run/ctl"; });
  ServeConfig c = config(1);
  deployment(c).ray_actor_options.num_cpus = 2.5;
  node.deploy(c);
  node.tick();
  const FakeLauncher::Child& child = node.launcher.children.at(1000);
  CHECK(child.argv == std::vector<std::string>{
                          "/opt/serve/serve-replica", "--config", "/etc/serve/serve.yaml", "--app",
                          "a", "--deployment", "d", "--http-port", "30000", "--grpc-port", "40000",
                          "--log-dir", node.dir.path, "--draining-period-s", "0",
                          "--control-socket", "/run/ctl/a.d.0.sock"});
  CHECK(std::count(child.env.begin(), child.env.end(), "OMP_NUM_THREADS=3") == 1);
  CHECK(std::none_of(child.env.begin(), child.env.end(), [](const std::string& e) {
    return e.rfind("CUDA_VISIBLE_DEVICES=", 0) == 0;
  }));
}

TEST_CASE("supervisor: a damaged state file adopts nothing and never throws") {
  struct Case {
    const char* name;
    std::string text;
  };
  const std::string good_replica =
      R"({"replica_id": "a.d.0", "application": "a", "deployment": "d", "pid": 1000, )"
      R"("http_port": 30000})";
  const std::vector<Case> cases = {
      {"truncated", R"({"replicas": [{"replica_id": "a.d.0", "pid": 10)"},
      {"not JSON", "\x01\x02garbage"},
      {"no replicas", R"({"haproxy_master_pid": 7})"},
      {"a port of the wrong type",
       R"({"replicas": [{"replica_id": "a.d.0", "pid": 1000, "http_port": "30000"}]})"},
      {"a port out of range",
       R"({"replicas": [{"replica_id": "a.d.0", "pid": 1000, "http_port": 70000}]})"},
      {"no id", R"({"replicas": [{"pid": 1000, "http_port": 30000}]})"},
      {"one good, one damaged: all or nothing",
       R"({"replicas": [)" + good_replica + R"(, {"replica_id": 5, "pid": 1000}]})"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    TempDir state_dir;
    const std::string state_file = state_dir.path + "/replicas-state.json";
    std::ofstream(state_file) << c.text;
    Calls calls;
    ManualClock clock;
    FakeLauncher launcher(calls);
    launcher.foreign[1000] = std::string("/opt/serve/serve-replica\0--app\0a", 32);
    FakeRegistry registry(calls);
    FakeControl control;
    QuietLogs quiet;
    ReplicaSupervisor supervisor(options(state_dir.path), registry, launcher, clock, control);
    CHECK_NOTHROW(supervisor.adopt(state_file));
    CHECK(supervisor.replicas().empty());
    supervisor.apply(std::make_shared<const ServeConfig>(config(1)), "/etc/serve/serve.yaml", "");
    supervisor.runOnce();
    CHECK(calls == Calls{"spawn 1000 port 30000"});  // a fresh start, as with no file
  }
}

// A manager that starts `config`'s one replica (pid 1000), sees it ready and registered, keeps
// <dir>/replicas-state.json, and then goes away as if killed: the replica runs on.
void runFirstManager(const std::string& dir, const ServeConfig& config, FakeRegistry& registry,
                     FakeLauncher& launcher, ManualClock& clock, FakeControl& control) {
  ReplicaSupervisor first(options(dir), registry, launcher, clock, control);
  first.adopt(dir + "/replicas-state.json");  // nothing to adopt yet; keeps the file from now on
  first.apply(std::make_shared<const ServeConfig>(config), "/etc/serve/serve.yaml", "");
  first.runOnce();
  launcher.printReady(1000);
  first.runOnce();
}

TEST_CASE("supervisor: a new manager adopts the replicas an earlier one left running") {
  TempDir state_dir;
  const std::string state_file = state_dir.path + "/replicas-state.json";
  const ServeConfig c = config(1);
  Calls calls;
  ManualClock clock;
  FakeLauncher launcher(calls);
  FakeRegistry registry(calls);
  FakeControl control;
  QuietLogs quiet;
  // The first manager: one replica in service, written to the state file; then it dies.
  runFirstManager(state_dir.path, c, registry, launcher, clock, control);
  REQUIRE(calls == Calls{"spawn 1000 port 30000", "register a.d.0 pid 1000 127.0.0.1:30000"});
  // Pid 1000 runs on, no longer our child; pid 4242 in the file is something else by now.
  launcher.foreign[1000] = std::string("/opt/serve/serve-replica\0--app\0a", 32);
  launcher.foreign[4242] = "/usr/bin/sleep";
  {
    nlohmann::json state = nlohmann::json::parse(std::ifstream(state_file));
    nlohmann::json stale = state["replicas"][0];
    stale["pid"] = 4242;
    stale["replica_id"] = "a.d.7";
    state["replicas"].push_back(stale);
    std::ofstream(state_file) << state.dump();
  }
  calls.clear();
  ReplicaSupervisor second(options(state_dir.path), registry, launcher, clock, control);
  second.adopt(state_file);
  second.apply(std::make_shared<const ServeConfig>(c), "/etc/serve/serve.yaml", "");
  second.runOnce();
  CHECK(calls.empty());  // served on: no start, no registration (the manager adopted its slot)
  REQUIRE(second.replicas().size() == 1);
  CHECK(second.replicas()[0].id == "a.d.0");
  CHECK(second.replicas()[0].state == "serving");
  CHECK(second.replicas()[0].pid == 1000);
  // It dies: watched by pid (not our child), taken out of its slot, and restarted under its id
  // on another port (its old one is quarantined).
  launcher.foreign.erase(1000);
  second.runOnce();
  CHECK(calls == Calls{"deregister a.d.0", "restart counted"});
  CHECK(second.replicas()[0].last_error == "exited unexpectedly (exit code 127)");
  calls.clear();
  clock.advance(1s);
  second.runOnce();
  CHECK(calls == Calls{"spawn 1001 port 30001"});
}

// A first manager ran a.d.0 (pid 1000, serving and registered) and was killed. leave() rewrites
// what the kill left behind; successor() is the next manager's supervisor, adopted and applied.
struct KilledManager {
  KilledManager() : launcher(calls), registry(calls) {
    runFirstManager(state_dir.path, one, registry, launcher, clock, control);
    REQUIRE(registry.registered.count("a.d.0") == 1);
    launcher.foreign[1000] = std::string("/opt/serve/serve-replica\0--app\0a", 32);
  }

  // `recorded`: the state replicas-state.json gives a.d.0 ("": the file does not name it).
  void leave(const std::string& recorded, bool retiring, bool registered) {
    nlohmann::json state = nlohmann::json::parse(std::ifstream(stateFile()));
    if (recorded.empty()) {
      state["replicas"] = nlohmann::json::array();
    } else {
      state["replicas"][0]["state"] = recorded;
      state["replicas"][0]["retiring"] = retiring;
    }
    std::ofstream(stateFile()) << state.dump();
    if (!registered) {
      registry.registered.clear();
    }
    calls.clear();
  }

  std::unique_ptr<ReplicaSupervisor> successor() {
    auto second = std::make_unique<ReplicaSupervisor>(options(state_dir.path), registry, launcher,
                                                      clock, control);
    second->adopt(stateFile());
    second->apply(std::make_shared<const ServeConfig>(one), "/etc/serve/serve.yaml", "");
    return second;
  }

  std::string stateFile() const { return state_dir.path + "/replicas-state.json"; }

  TempDir state_dir;
  const ServeConfig one = config(1);
  Calls calls;
  ManualClock clock;
  FakeLauncher launcher;
  FakeRegistry registry;
  FakeControl control;
  QuietLogs quiet;
};

TEST_CASE("supervisor: a successor settles what it adopts against the registrations") {
  // The earlier manager died between two writes; each row is one state it can leave behind:
  // what replicas-state.json recorded for pid 1000 (a.d.0), whether the manager's registrations
  // still hold it, and what the successor's adopt() and first pass must do.
  struct Case {
    std::string name;
    std::string recorded;  // "": the file does not name the replica
    bool retiring;
    bool registered;
    Calls calls;
    std::string state;
  };
  const std::vector<Case> cases = {
      {"serving and registered: served on", "serving", false, true, {}, "serving"},
      {"serving, registration lost: registered again",
       "serving",
       false,
       false,
       {"register a.d.0 pid 1000 127.0.0.1:30000"},
       "serving"},
      {"starting, registered before the file said so: serving",
       "starting",
       false,
       true,
       {},
       "serving"},
      {"starting, never registered: stopped, a new one starts",
       "starting",
       false,
       false,
       {"TERM 1000", "spawn 1001 port 30001"},
       "stopping"},
      {"draining: its slot drains, then it stops",
       "draining",
       true,
       true,
       {"deregister a.d.0", "TERM 1000", "spawn 1001 port 30001"},
       "stopping"},
      {"stopping, registration gone: left to exit",
       "stopping",
       true,
       false,
       {"spawn 1001 port 30001"},
       "stopping"},
      {"registered but not recorded: drained and stopped",
       "",
       false,
       true,
       {"deregister a.d.0", "TERM 1000", "spawn 1001 port 30001"},
       "stopping"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    KilledManager killed;
    killed.leave(c.recorded, c.retiring, c.registered);
    const std::unique_ptr<ReplicaSupervisor> second = killed.successor();
    second->runOnce();
    CAPTURE(absl::StrJoin(killed.calls, "; "));
    CHECK(killed.calls == c.calls);
    const auto views = second->replicas();
    REQUIRE(!views.empty());
    CHECK(views[0].id == "a.d.0");
    CHECK(views[0].state == c.state);
    // Whatever it did, a.d.0 is registered exactly when it serves.
    CHECK(killed.registry.registered.count("a.d.0") == (c.state == "serving" ? 1U : 0U));
  }
}

TEST_CASE(
    "supervisor: an adopted replica recorded as starting is stopped only once no slot holds its "
    "endpoint") {
  // The earlier manager put a.d.0 into an HAProxy slot and died before recording either the
  // registration or the state: the file says starting, the registrations lack it, and HAProxy
  // sends it requests through a slot nobody names. Stopping it then would fail those requests.
  KilledManager killed;
  killed.leave("starting", false, false);
  killed.registry.held_endpoints.insert("127.0.0.1:30000");
  const std::unique_ptr<ReplicaSupervisor> second = killed.successor();
  second->runOnce();
  // Its replacement starts; a.d.0 waits for the slot, with no signal yet.
  CHECK(killed.calls == Calls{"spawn 1001 port 30001"});
  CHECK(second->replicas()[0].state == "draining");
  killed.clock.advance(5s);
  second->runOnce();
  CHECK(killed.calls == Calls{"spawn 1001 port 30001"});
  // The reconciler drained and freed the slot: now it is told to stop.
  killed.registry.held_endpoints.clear();
  second->runOnce();
  CHECK(killed.calls == Calls{"spawn 1001 port 30001", "TERM 1000"});
  CHECK(second->replicas()[0].state == "stopping");
}

TEST_CASE("supervisor: a user_config change is applied in place, or the replica is replaced") {
  for (const bool accepted : {true, false}) {
    CAPTURE(accepted);
    Node node([](SupervisorOptions& o) { o.control_dir = "/run/ctl"; });
    ServeConfig c = config(1);
    node.serve(c);
    node.control.reconfigureSucceeds(accepted);
    deployment(c).user_config_json = R"({"threshold":0.5})";
    node.deploy(c);
    CHECK(node.tick().empty());  // asked over the control socket, off the loop's thread
    // The answer is collected by a later tick (real time, bounded). Accepted: the replica runs
    // the new user_config, so the next health poll is the next request. Refused: replaced.
    Calls calls;
    for (int i = 0; i < 5000 && calls.empty() && node.control.requests().size() < 2; ++i) {
      std::this_thread::sleep_for(1ms);
      node.clock.advance(1s);
      calls = node.tick();
    }
    if (accepted) {
      CHECK(calls.empty());
      CHECK(node.control.requests() == Calls{"reconfigure a.d.0.sock", "health a.d.0.sock"});
      CHECK(node.ids() == std::vector<std::string>{"a.d.0 serving"});
      continue;
    }
    CHECK(calls == Calls{"spawn 1001 port 30001"});
    CHECK(node.control.requests() == Calls{"reconfigure a.d.0.sock"});
    CHECK(node.view("a.d.0").last_error ==
          "reconfigure failed: reconfigure raised ValueError: bad");
  }
}

TEST_CASE("supervisor: stop drains every replica through the registry and restarts none") {
  Node node;
  node.serve(config(2));
  node.supervisor->stop();  // no thread: the ticks below do the work
  CHECK(node.tick() == Calls{"deregister a.d.0", "deregister a.d.1"});
  CHECK(node.tick() == Calls{"TERM 1000", "TERM 1001"});
  node.termedExit();
  CHECK(node.tick().empty());
  CHECK(node.supervisor->replicas().empty());
}

}  // namespace
}  // namespace serve::manager
