#include "haproxy-manager/reconcile/reload.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "haproxy-manager/reconcile/reconciler.h"
#include "tests/unit/haproxy-manager/table_builders.h"

namespace serve::manager {
namespace {

using namespace serve::manager::testing;

// HAProxy as the reload path sees it: `haproxy -c` and `reload` answer as told, every call is
// recorded with the config file's content at that moment.
class FakeHaproxy : public ProcessControl {
 public:
  explicit FakeHaproxy(std::string config_path) : config_path_(std::move(config_path)) {}
  Status validate_result = absl::OkStatus();
  Status reload_result = absl::OkStatus();
  Status restart_result = absl::OkStatus();
  std::vector<std::string> calls;
  std::string config_at_restart;

  Status validate(const std::string& path) override {
    calls.push_back("validate " + std::filesystem::path(path).filename().string());
    return validate_result;
  }
  Status start() override { return absl::OkStatus(); }
  StatusOr<ReloadOutcome> reload() override {
    calls.push_back("reload");
    if (!reload_result.ok()) {
      return reload_result;
    }
    return ReloadOutcome{10, 11, std::chrono::milliseconds(5)};
  }
  Status adopt(int) override { return absl::OkStatus(); }
  bool masterAlive() override { return true; }
  int masterPid() const override { return 9; }
  StatusOr<int> oldWorkerCount() override { return 0; }
  void stop(double) override {}
  Status restart() override {
    calls.push_back("restart");
    std::ifstream in(config_path_);
    config_at_restart.assign(std::istreambuf_iterator<char>(in), {});
    return restart_result;
  }

 private:
  std::string config_path_;
};

class FakeAdmin : public RuntimeApi {
 public:
  std::vector<std::string> commands;
  StatusOr<std::string> execute(const std::string& command) override {
    commands.push_back(command);
    return std::string("1\n# be_id be_name srv_id srv_name srv_addr\n");
  }
};

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string makeTempDir() {
  char name[] = "/tmp/reload-test-XXXXXX";
  REQUIRE(::mkdtemp(name) != nullptr);
  return name;
}

// A state directory with the real templates, the config and maps of `running` as last good.
struct Fixture {
  Fixture() {
    config = dir + "/haproxy.cfg";
    files = std::make_unique<ConfigFiles>(config, SERVE_TESTDATA_DIR "/../../templates");
    haproxy = std::make_unique<FakeHaproxy>(config);
    REQUIRE(files->follow(running).ok());
  }
  ~Fixture() { std::filesystem::remove_all(dir); }

  RoutingTable withState(RoutingTable t) const {
    t.global.state_dir = dir;
    t.global.admin_socket = dir + "/admin.sock";
    return t;
  }
  ReloadParts parts() { return {*haproxy, admin, *files, metrics, clock}; }
  // Every file in the directory but the server state, by name.
  std::map<std::string, std::string> snapshot() const {
    std::map<std::string, std::string> out;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      if (name != kServerStateFile) {
        out[name] = readFile(entry.path().string());
      }
    }
    return out;
  }
  bool counted(const std::string& labels) const {
    return metrics.serialize().find("serve_haproxy_reloads_total{" + labels + "} 1") !=
           std::string::npos;
  }

  std::string dir = makeTempDir();  // first: the tables below live in it
  std::string config;
  RoutingTable running = withState(table({backend("a", "/a", {active("a-1", 30000)})}));
  RoutingTable desired = withState(table(
      {backend("a", "/a", {active("a-1", 30000)}), backend("b", "/b", {active("b-1", 30005)})}));
  std::vector<ReloadReason> reasons = {{"application_added", "application 'b' added"}};
  std::unique_ptr<ConfigFiles> files;
  std::unique_ptr<FakeHaproxy> haproxy;
  FakeAdmin admin;
  ManagerMetrics metrics;
  ManualClock clock;
};

TEST_CASE("reload: a candidate haproxy -c refuses leaves the last good files, untouched") {
  Fixture f;
  const auto before = f.snapshot();
  f.haproxy->validate_result = absl::InvalidArgumentError("[ALERT] bad thing");
  const StatusOr<ReloadOutcome> out = reloadTo(f.desired, f.reasons, f.parts());
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(messageOf(out.status()) ==
        "the new HAProxy config was refused by haproxy -c; the running config is unchanged. "
        "[ALERT] bad thing");
  CHECK(f.haproxy->calls == std::vector<std::string>{"validate haproxy.cfg.candidate"});
  CHECK(f.snapshot() == before);  // candidate removed, config and maps as they were
  CHECK(f.counted(R"(reason="application_added",result="invalid")"));
}

TEST_CASE("reload: a reload HAProxy fails rolls the files back to the last good set") {
  Fixture f;
  const auto before = f.snapshot();
  f.haproxy->reload_result = absl::DeadlineExceededError("no new worker took over");
  const StatusOr<ReloadOutcome> out = reloadTo(f.desired, f.reasons, f.parts());
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().code() == absl::StatusCode::kInternal);
  CHECK(messageOf(out.status()) ==
        "HAProxy reload failed; it keeps serving the previous config. no new worker took over");
  CHECK(f.haproxy->calls == std::vector<std::string>{"validate haproxy.cfg.candidate", "reload"});
  CHECK(f.snapshot() == before);
  CHECK(f.counted(R"(reason="application_added",result="failed")"));
}

TEST_CASE("reload: a successful reload installs the candidate as the last good set") {
  Fixture f;
  const StatusOr<ReloadOutcome> out = reloadTo(f.desired, f.reasons, f.parts());
  REQUIRE(out.ok());
  CHECK(out->new_worker_pid == 11);
  const StatusOr<RenderedConfig> want = f.files->render(f.desired);
  REQUIRE(want.ok());
  CHECK(readFile(f.config) == want->config);
  CHECK(f.files->lastGood().config == want->config);
  CHECK_FALSE(std::filesystem::exists(f.config + ".candidate"));
  // The running worker's server states are saved for the new one first.
  CHECK(f.admin.commands == std::vector<std::string>{"show servers state"});
  CHECK(readFile(f.dir + "/" + kServerStateFile) ==
        "1\n# be_id be_name srv_id srv_name srv_addr\n");
  CHECK(f.counted(R"(reason="application_added",result="success")"));
}

TEST_CASE("restart: HAProxy starts again from the current table, draining slots freed") {
  Fixture f;
  // Since the last reload a replica joined at runtime and another started draining: the last
  // good files of that reload know neither.
  const RoutingTable now =
      f.withState(table({backend("a", "/a", {draining("a-1", 30000), active("a-2", 30001)})}));
  REQUIRE(restartFrom(now, f.parts()).ok());
  const StatusOr<RenderedConfig> want = f.files->render(withDrainingFreed(now));
  REQUIRE(want.ok());
  CHECK(f.haproxy->calls == std::vector<std::string>{"restart"});
  CHECK(f.haproxy->config_at_restart == want->config);
  CHECK(f.files->lastGood().config == want->config);
  CHECK(f.counted(R"(reason="restart",result="success")"));
}

}  // namespace
}  // namespace serve::manager
