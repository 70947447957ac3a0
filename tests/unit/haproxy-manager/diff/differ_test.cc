#include "haproxy-manager/diff/differ.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/unit/haproxy-manager/table_builders.h"

namespace serve::manager {
namespace {

using namespace serve::manager::testing;
using Lines = std::vector<std::string>;

struct Case {
  const char* name;
  RoutingTable running;
  RoutingTable desired;
  Lines commands;
  Lines reload_reasons;  // texts
};

Lines texts(const std::vector<ReloadReason>& reasons) {
  Lines out;
  for (const ReloadReason& r : reasons) {
    out.push_back(r.text);
  }
  return out;
}

std::vector<Case> cases() {
  std::vector<Case> out;
  const RoutingTable base = table({backend("a", "/a", {active("a-1", 30000)})});

  out.push_back({"no change sends nothing", base, base, {}, {}});

  out.push_back({"a new replica fills the lowest free slot",
                 base,
                 table({backend("a", "/a", {active("a-1", 30000), active("a-2", 30001)})}),
                 {"set server http-a/slot2 addr 127.0.0.1 port 30001",
                  "set server http-a/slot2 state ready", "set server http-a/slot2 health up"},
                 {}});

  out.push_back({"a departed replica drains",
                 base,
                 table({backend("a", "/a", {draining("a-1", 30000)})}),
                 {"set server http-a/slot1 state drain"},
                 {}});

  out.push_back(
      {"an idle draining slot goes to maintenance at the placeholder",
       table({backend("a", "/a", {draining("a-1", 30000)})}),
       table({backend("a", "/a", {freeSlot()})}),
       {"set server http-a/slot1 state maint", "set server http-a/slot1 addr 127.0.0.1 port 1"},
       {}});

  out.push_back({"a draining replica that comes back is made ready in place",
                 table({backend("a", "/a", {draining("a-1", 30000)})}),
                 base,
                 {"set server http-a/slot1 state ready"},
                 {}});

  out.push_back(
      {"a slot moved to a new endpoint goes through maintenance",
       base,
       table({backend("a", "/a", {active("a-9", 30009, "127.0.0.2")})}),
       {"set server http-a/slot1 state maint", "set server http-a/slot1 addr 127.0.0.2 port 30009",
        "set server http-a/slot1 state ready", "set server http-a/slot1 health up"},
       {}});

  out.push_back({"a replica id change at the same endpoint needs no command",
                 base,
                 table({backend("a", "/a", {active("a-renamed", 30000)})}),
                 {},
                 {}});

  out.push_back(
      {"a route prefix change swaps map entries around the server changes",
       base,
       table({backend("a", "/b", {active("a-1", 30000), active("a-2", 30001)})}),
       {"del map /run/serve/routes_exact.map /a", "del map /run/serve/routes_prefix.map /a/",
        "del map /run/serve/routes_rewrite.map /a",
        "set server http-a/slot2 addr 127.0.0.1 port 30001", "set server http-a/slot2 state ready",
        "set server http-a/slot2 health up", "add map /run/serve/routes_exact.map /b http-a",
        "add map /run/serve/routes_prefix.map /b/ http-a",
        "add map /run/serve/routes_rewrite.map /b /v2/models/a/infer",
        "set map /run/serve/node.map routes {\"/b\":\"a\"}"},
       {}});

  {
    // With request logging on, the route-label map follows the prefix too.
    RoutingTable logged = base;
    logged.global.ingress_log_socket = "/run/serve/ingress.sock";
    RoutingTable moved = logged;
    moved.backends[0].route_prefix = "/b";
    out.push_back(
        {"with request logging, a route prefix change also swaps the route label",
         logged,
         moved,
         {"del map /run/serve/routes_exact.map /a", "del map /run/serve/routes_prefix.map /a/",
          "del map /run/serve/routes_label.map /a/", "del map /run/serve/routes_rewrite.map /a",
          "add map /run/serve/routes_exact.map /b http-a",
          "add map /run/serve/routes_prefix.map /b/ http-a",
          "add map /run/serve/routes_label.map /b/ /b",
          "add map /run/serve/routes_rewrite.map /b /v2/models/a/infer",
          "set map /run/serve/node.map routes {\"/b\":\"a\"}"},
         {}});
    out.push_back({"turning request logging on reloads",
                   base,
                   logged,
                   {},
                   {"global settings changed: ingress log socket"}});
  }

  {
    RoutingTable renamed = base;
    renamed.backends[0].model_name = "mlp";
    out.push_back({"a model name change updates the models map",
                   base,
                   renamed,
                   {"del map /run/serve/models.map a", "del map /run/serve/routes_rewrite.map /a",
                    "add map /run/serve/models.map mlp http-a",
                    "add map /run/serve/routes_rewrite.map /a /v2/models/mlp/infer"},
                   {}});
  }

  out.push_back({"node drain flips the node map",
                 base,
                 table({backend("a", "/a", {active("a-1", 30000)})}, /*draining=*/true),
                 {"set map /run/serve/node.map draining 1"},
                 {}});

  out.push_back({"a new application reloads",
                 base,
                 table({backend("a", "/a", {active("a-1", 30000)}), backend("b", "/b")}),
                 {},
                 {"application 'b' added"}});

  out.push_back({"a removed application reloads",
                 table({backend("a", "/a", {active("a-1", 30000)}), backend("b", "/b")}),
                 base,
                 {},
                 {"application 'b' removed"}});

  out.push_back({"slot growth reloads",
                 base,
                 table({backend("a", "/a", {active("a-1", 30000)}, 32)}),
                 {},
                 {"application 'a' needs 32 server slots (has 16)"}});

  {
    RoutingTable limits = table({backend("a", "/a", {active("a-1", 30000)}, 2)});
    RoutingTable raised = limits;
    raised.backends[0].max_ongoing_requests = 8;
    out.push_back({"a per-server limit change is applied in place, no reload",
                   limits,
                   raised,
                   {"set maxconn server http-a/slot1 8", "set maxconn server http-a/slot2 8"},
                   {}});
  }

  {
    RoutingTable globals = base;
    globals.global.maxconn = 100;
    globals.global.health_check_inter_s = 1;
    globals.backends.push_back(backend("b", "/b"));
    out.push_back({"global changes and a new application are all named",
                   base,
                   globals,
                   {},
                   {"global settings changed: maxconn, health checks", "application 'b' added"}});
  }
  return out;
}

std::string plan_text(const Lines& lines) {
  std::string out;
  for (const std::string& line : lines) {
    out += line + " | ";
  }
  return out;
}

TEST_CASE("differ: running + desired => exact commands or reload reasons") {
  for (const Case& c : cases()) {
    const std::string name = c.name;
    CAPTURE(name);
    CAPTURE(plan_text(diff(c.running, c.desired).commands));
    const Plan plan = diff(c.running, c.desired);
    CHECK(plan.commands == c.commands);
    CHECK(texts(plan.reload_reasons) == c.reload_reasons);
    CHECK(plan.empty() == (c.commands.empty() && c.reload_reasons.empty()));
  }
}

TEST_CASE("differ: reload reasons carry a kind for metrics") {
  const RoutingTable base = table({backend("a", "/a")});
  RoutingTable changed = table({backend("a", "/a", {}, 32), backend("b", "/b")});
  changed.global.nbthread = 2;
  changed.backends[0].max_ongoing_requests = 1;
  std::vector<std::string> kinds;
  for (const ReloadReason& r : diff(base, changed).reload_reasons) {
    kinds.push_back(r.kind);
  }
  CHECK(kinds == Lines{"global", "slots_grown", "application_added"});
  CHECK(diff(changed, base).reload_reasons.back() ==
        ReloadReason{"application_removed", "application 'b' removed"});
}

TEST_CASE("differ: drift repair puts a slot changed by hand back") {
  // Someone ran `set server http-a/slot1 state maint` with socat: observed shows it free.
  const RoutingTable desired = table({backend("a", "/a", {active("a-1", 30000)})});
  const RoutingTable observed = table({backend("a", "/a", {freeSlot()})});
  CHECK(diff(observed, desired).commands ==
        Lines{"set server http-a/slot1 addr 127.0.0.1 port 30000",
              "set server http-a/slot1 state ready", "set server http-a/slot1 health up"});
}

// A table whose node listens for gRPC.
RoutingTable grpcTable(std::vector<Backend> backends) {
  RoutingTable t = table(std::move(backends));
  t.global.grpc_port = 9000;
  return t;
}

TEST_CASE("differ: a replica's gRPC slot follows its HTTP slot, without health commands") {
  const RoutingTable empty = grpcTable({backend("a", "/a", {}, 2)});
  const RoutingTable one =
      grpcTable({backend("a", "/a", {withGrpc(active("a-1", 30000), 40000)}, 2)});
  const RoutingTable leaving =
      grpcTable({backend("a", "/a", {withGrpc(draining("a-1", 30000), 40000)}, 2)});
  CHECK(diff(empty, one).commands == Lines{"set server http-a/slot1 addr 127.0.0.1 port 30000",
                                           "set server http-a/slot1 state ready",
                                           "set server http-a/slot1 health up",
                                           "set server grpc-a/slot1 addr 127.0.0.1 port 40000",
                                           "set server grpc-a/slot1 state ready"});
  CHECK(diff(one, leaving).commands ==
        Lines{"set server http-a/slot1 state drain", "set server grpc-a/slot1 state drain"});
  CHECK(diff(leaving, empty).commands == Lines{"set server http-a/slot1 state maint",
                                               "set server http-a/slot1 addr 127.0.0.1 port 1",
                                               "set server grpc-a/slot1 state maint",
                                               "set server grpc-a/slot1 addr 127.0.0.1 port 1"});

  // A replica without gRPC leaves its gRPC slot in maintenance.
  const RoutingTable http_only = grpcTable({backend("a", "/a", {active("a-1", 30000)}, 2)});
  CHECK(diff(empty, http_only).commands ==
        Lines{"set server http-a/slot1 addr 127.0.0.1 port 30000",
              "set server http-a/slot1 state ready", "set server http-a/slot1 health up"});

  // Limits apply to both protocols' servers.
  RoutingTable raised = one;
  raised.backends[0].max_ongoing_requests = 9;
  CHECK(diff(one, raised).commands ==
        Lines{"set maxconn server http-a/slot1 9", "set maxconn server http-a/slot2 9",
              "set maxconn server grpc-a/slot1 9", "set maxconn server grpc-a/slot2 9"});

  // The listener itself is structure.
  RoutingTable moved = one;
  moved.global.grpc_port = 9001;
  CHECK(texts(diff(one, moved).reload_reasons) == Lines{"global settings changed: gRPC listener"});
}

TEST_CASE("differ: a replica's new gRPC port moves only its gRPC server") {
  const RoutingTable before =
      grpcTable({backend("a", "/a", {withGrpc(active("a-1", 30000), 40000)}, 1)});
  const RoutingTable after =
      grpcTable({backend("a", "/a", {withGrpc(active("a-1", 30000), 40009)}, 1)});
  CHECK(diff(before, after).commands == Lines{"set server grpc-a/slot1 state maint",
                                              "set server grpc-a/slot1 addr 127.0.0.1 port 40009",
                                              "set server grpc-a/slot1 state ready"});
}

TEST_CASE("differ: a gRPC slot put in maintenance by hand is put back alone") {
  const RoutingTable running =
      grpcTable({backend("a", "/a", {withGrpc(active("a-1", 30000), 40000)}, 1)});
  RoutingTable observed = running;
  observed.backends[0].slots[0].endpoint.grpc_port = 0;  // how observedTable reports it
  CHECK(diff(observed, running).commands ==
        Lines{"set server grpc-a/slot1 addr 127.0.0.1 port 40000",
              "set server grpc-a/slot1 state ready"});
}

TEST_CASE("differ: a free slot observed in drain at a stale address is repaired") {
  CHECK(slotCommands("http-a", 2, draining("x", 30000), draining("y", 30001)) ==
        Lines{"set server http-a/slot3 state maint",
              "set server http-a/slot3 addr 127.0.0.1 port 30001",
              "set server http-a/slot3 state drain"});
  CHECK(slotCommands("http-a", 0, freeSlot(), freeSlot()).empty());
}

}  // namespace
}  // namespace serve::manager

namespace serve::manager {
namespace {

using namespace serve::manager::testing;

TEST_CASE("differ: a new max_queued_requests reloads (it is a rule in the backend)") {
  const RoutingTable running = table({backend("a", "/a", {active("a-1", 30000)})});
  RoutingTable desired = running;
  desired.backends[0].max_queued_requests = 2;
  const Plan plan = diff(running, desired);
  CHECK(plan.commands.empty());
  REQUIRE(plan.reload_reasons.size() == 1);
  CHECK(plan.reload_reasons[0] ==
        ReloadReason{"queue_limit", "application 'a' max_queued_requests -1 -> 2"});
}

}  // namespace
}  // namespace serve::manager
