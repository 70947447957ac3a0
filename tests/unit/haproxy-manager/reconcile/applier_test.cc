#include "haproxy-manager/reconcile/applier.h"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "haproxy-manager/diff/differ.h"
#include "tests/unit/haproxy-manager/table_builders.h"

namespace serve::manager {
namespace {

using namespace serve::manager::testing;

// The admin socket as the applier sees it: `show ...` answers from `shows` (a missing one is a
// failed exchange), every other line is recorded and answered with HAProxy's blank success.
class FakeAdmin : public RuntimeApi {
 public:
  std::map<std::string, std::string> shows;
  std::vector<std::string> sent;

  StatusOr<std::string> execute(const std::string& command) override {
    if (command.rfind("show ", 0) == 0) {
      auto it = shows.find(command);
      if (it == shows.end()) {
        return absl::UnavailableError("connection refused");
      }
      return it->second;
    }
    sent.push_back(command);
    return std::string("\n");
  }
};

constexpr char kServersHeader[] =
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health "
    "srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord "
    "srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n";

// One `show servers state` row of backend http-a; admin 1 = forced maintenance (a free slot).
std::string serverRow(int index, int port, int admin) {
  return absl::StrCat("3 http-a ", index, " slot", index, " 127.0.0.1 2 ", admin,
                      " 1 1 1 6 3 4 6 0 0 0 - ", port, " - 0 0 - - 0\n");
}

// HAProxy showing backend http-a with 2 slots as given.
std::string serversState(int port1, int admin1, int port2, int admin2) {
  return kServersHeader + serverRow(1, port1, admin1) + serverRow(2, port2, admin2);
}

const RoutingTable kRunning = table({backend("a", "/a", {active("a-1", 30000)}, 2)});

TEST_CASE("drift repair: HAProxy in step with the table is left alone") {
  FakeAdmin admin;
  admin.shows["show servers state"] = serversState(30000, 0, 1, 1);
  ManagerMetrics metrics;
  CHECK(repairDrift(admin, kRunning, metrics) == 0);
  CHECK(admin.sent.empty());
}

TEST_CASE("drift repair: a slot changed by hand is set back, and counted once") {
  struct Case {
    const char* name;
    std::string servers;
    Slot observed;  // slot1 as HAProxy shows it
  };
  const std::vector<Case> cases = {
      {"put in maintenance", serversState(30000, 1, 1, 1), Slot{}},
      {"pointed at another port", serversState(30007, 0, 1, 1), active("", 30007)},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    FakeAdmin admin;
    admin.shows["show servers state"] = c.servers;
    ManagerMetrics metrics;
    CHECK(repairDrift(admin, kRunning, metrics) == 1);
    const std::vector<std::string> want =
        slotCommands("http-a", 0, c.observed, kRunning.backends[0].slots[0]);
    REQUIRE_FALSE(want.empty());
    CHECK(absl::StrJoin(admin.sent, "; ") == absl::StrJoin(want, "; "));
    CHECK(metrics.serialize().find("serve_haproxy_drift_repairs_total 1\n") != std::string::npos);
  }
}

TEST_CASE("drift repair: HAProxy not answering repairs nothing") {
  FakeAdmin admin;  // no `show` answers
  ManagerMetrics metrics;
  CHECK(repairDrift(admin, kRunning, metrics) == 0);
  CHECK(admin.sent.empty());
}

TEST_CASE("idle draining slots: drained before the sample and idle on both protocols") {
  const RoutingTable running = table({backend(
      "a", "/a", {draining("a-1", 30000), draining("a-2", 30001), draining("a-3", 30002)}, 4)});
  const Clock::time_point t0 = Clock::time_point{} + std::chrono::hours(1);
  const std::map<SlotRef, Clock::time_point> started = {
      {{"a", 0}, t0}, {{"a", 1}, t0}, {{"a", 2}, t0 + std::chrono::seconds(2)}};
  FakeAdmin admin;
  // slot1: idle; slot2: a request in progress on gRPC; slot3: idle but drained after the sample.
  admin.shows["show stat"] =
      "# pxname,svname,qcur,scur,status,type\n"
      "http-a,slot1,0,0,DRAIN,2\n"
      "grpc-a,slot1,0,0,DRAIN,2\n"
      "http-a,slot2,0,0,DRAIN,2\n"
      "grpc-a,slot2,0,1,DRAIN,2\n"
      "http-a,slot3,0,0,DRAIN,2\n";
  CHECK(idleDrainingSlots(admin, running, started, t0 + std::chrono::seconds(1)) ==
        std::set<SlotRef>{{"a", 0}});
  // A queued request keeps a slot busy too.
  admin.shows["show stat"] = "# pxname,svname,qcur,scur,status,type\nhttp-a,slot1,1,0,DRAIN,2\n";
  CHECK(idleDrainingSlots(admin, running, started, t0 + std::chrono::seconds(1)).empty());
}

TEST_CASE("runtime plans count their commands by kind and result") {
  FakeAdmin admin;
  ManagerMetrics metrics;
  const std::vector<std::string> commands = {"set server http-a/slot1 state ready",
                                             "set server http-a/slot2 state maint",
                                             "add map /run/serve/routes.map /b http-b"};
  REQUIRE(applyRuntimePlan(admin, commands, metrics).ok());
  CHECK(admin.sent.size() == 1);  // one batch
  const std::string text = metrics.serialize();
  CHECK(text.find(R"(serve_haproxy_runtime_commands_total{kind="set server",result="ok"} 2)") !=
        std::string::npos);
  CHECK(text.find(R"(serve_haproxy_runtime_commands_total{kind="add map",result="ok"} 1)") !=
        std::string::npos);
}

}  // namespace
}  // namespace serve::manager
