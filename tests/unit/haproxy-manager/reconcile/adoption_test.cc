#include "haproxy-manager/reconcile/adoption.h"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "tests/unit/haproxy-manager/table_builders.h"

namespace serve::manager {
namespace {

using namespace serve::manager::testing;

const ReplicaRegistration kA1{"a-1", "a", "A", "127.0.0.1", 30000, 40000, 101};
const ReplicaRegistration kA2{"a-2", "a", "A", "127.0.0.1", 30001, 0, 102};

TEST_CASE("manager state: what one manager writes the next one reads back") {
  const ManagerState state{4242, {kA1, kA2}};
  const StatusOr<ManagerState> read = parseManagerState(managerStateJson(state), "s.json");
  REQUIRE(read.ok());
  CHECK(*read == state);
}

TEST_CASE("manager state: a damaged file is refused with what is wrong, never thrown") {
  struct Case {
    const char* name;
    std::string text;
    std::string message;
  };
  const std::string good = managerStateJson({4242, {kA1}});
  const std::vector<Case> cases = {
      {"empty (a crash before the first write)", "",
       "s.json: not valid JSON (truncated or damaged)"},
      {"truncated", good.substr(0, good.size() / 2),
       "s.json: not valid JSON (truncated or damaged)"},
      {"not an object", "[1, 2]", "s.json: no 'haproxy_master_pid'"},
      {"no master pid", R"({"replicas": []})", "s.json: no 'haproxy_master_pid'"},
      {"master pid as a string", R"({"haproxy_master_pid": "4242"})",
       "s.json: 'haproxy_master_pid' must be an integer in [1, 1073741824], got \"4242\""},
      {"master pid 0", R"({"haproxy_master_pid": 0})",
       "s.json: 'haproxy_master_pid' must be an integer in [1, 1073741824], got 0"},
      {"master pid too large for an int", R"({"haproxy_master_pid": 99999999999})",
       "s.json: 'haproxy_master_pid' must be an integer in [1, 1073741824], got 99999999999"},
      {"replicas not a list", R"({"haproxy_master_pid": 7, "replicas": {}})",
       "s.json: 'replicas' must be a list"},
      {"a replica not an object", R"({"haproxy_master_pid": 7, "replicas": [3]})",
       "s.json: each replica must be an object"},
      {"a replica without an id", R"({"haproxy_master_pid": 7, "replicas": [{"pid": 3}]})",
       "s.json: a replica has no replica_id"},
      {"a port out of range",
       R"({"haproxy_master_pid": 7, "replicas": [{"replica_id": "r", "http_port": 70000}]})",
       "s.json: 'http_port' must be an integer in [0, 65535], got 70000"},
      {"a host that is not a string",
       R"({"haproxy_master_pid": 7, "replicas": [{"replica_id": "r", "host": 1}]})",
       "s.json: 'host' must be a string"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    StatusOr<ManagerState> state{absl::UnknownError("not run")};
    CHECK_NOTHROW(state = parseManagerState(c.text, "s.json"));
    REQUIRE_FALSE(state.ok());
    CHECK(state.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(messageOf(state.status()) == c.message);
  }
}

TEST_CASE("adoption keeps the registrations whose process still runs") {
  const ReplicaRegistration remote{"r-9", "a", "A", "10.0.0.9", 30000, 0, 0};  // pid 0: not ours
  const std::set<int> running = {102};
  const auto live =
      liveRegistrations({kA1, kA2, remote}, [&](int pid) { return running.count(pid) > 0; });
  CHECK(live == std::vector<ReplicaRegistration>{kA2, remote});
}

ServerStateRow server(const std::string& backend, int index, const std::string& addr, int port,
                      int admin_state) {
  ServerStateRow row;
  row.backend = backend;
  row.server = "slot" + std::to_string(index);
  row.addr = addr;
  row.port = port;
  row.op_state = ServerOp::kRunning;
  row.admin_state = admin_state;
  return row;
}

// `count` slots of `backend` as HAProxy lists free ones: forced maintenance, port 1.
std::vector<ServerStateRow> freeRows(const std::string& backend, int count) {
  std::vector<ServerStateRow> rows;
  for (int i = 1; i <= count; ++i) {
    rows.push_back(server(backend, i, "127.0.0.1", 1, ServerAdmin::kForcedMaint));
  }
  return rows;
}

TEST_CASE("adoption rebuilds the running table from what HAProxy runs") {
  // The config asks for 16 slots; the earlier manager had grown the backend to 32. Slot 1 holds
  // a-1, slot 3 drains a-2, the rest are free (forced maintenance).
  std::vector<ServerStateRow> rows = freeRows("http-a", 32);
  rows[0] = server("http-a", 1, "127.0.0.1", 30000, 0);
  rows[2] = server("http-a", 3, "127.0.0.1", 30001, ServerAdmin::kForcedDrain);
  const RoutingTable base = table({backend("a", "/a")});
  const RoutingTable adopted = adoptedTable(base, rows, {kA1, kA2});
  RoutingTable want =
      table({backend("a", "/a", {active("a-1", 30000), freeSlot(), draining("a-2", 30001)}, 32)});
  CHECK(adopted == want);
}

TEST_CASE("a slot holds a replica by its name, or by its endpoint where nobody registered it") {
  // The earlier manager put a-3 (port 30002) into slot 2 and died before registering it: the
  // adopted slot is active with no name. Slot 3 drains a-2; a-1 has left its slot.
  std::vector<ServerStateRow> rows = freeRows("http-a", 16);
  rows[1] = server("http-a", 2, "127.0.0.1", 30002, 0);
  rows[2] = server("http-a", 3, "127.0.0.1", 30001, ServerAdmin::kForcedDrain);
  const RoutingTable adopted = adoptedTable(table({backend("a", "/a")}), rows, {kA2});
  const ReplicaRegistration a3{"a-3", "a", "A", "127.0.0.1", 30002, 0, 103};
  CHECK(tableHolds(adopted, a3));   // by its endpoint
  CHECK(tableHolds(adopted, kA2));  // by its name, while its slot drains
  CHECK_FALSE(tableHolds(adopted, kA1));
  ReplicaRegistration elsewhere = a3;
  elsewhere.host = "10.0.0.7";  // the same port on another host is another endpoint
  CHECK_FALSE(tableHolds(adopted, elsewhere));
  // Once those slots are freed, nothing holds either.
  RoutingTable freed = adopted;
  freed.backends[0].slots[1] = freeSlot();
  freed.backends[0].slots[2] = freeSlot();
  CHECK_FALSE(tableHolds(freed, a3));
  CHECK_FALSE(tableHolds(freed, kA2));
}

}  // namespace
}  // namespace serve::manager
