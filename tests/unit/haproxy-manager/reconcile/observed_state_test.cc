#include "haproxy-manager/reconcile/observed_state.h"

#include <doctest/doctest.h>

#include "haproxy-manager/diff/differ.h"
#include "tests/unit/haproxy-manager/table_builders.h"

namespace serve::manager {
namespace {

using namespace serve::manager::testing;

const RoutingTable kRunning =
    table({backend("a", "/a", {active("a-1", 30000), draining("a-2", 30001), freeSlot()}, 3)});

std::vector<ObservedServer> matching() {
  return {{"http-a", "slot1", "127.0.0.1", 30000, false, false},
          {"http-a", "slot2", "127.0.0.1", 30001, false, true},
          {"http-a", "slot3", "127.0.0.1", 1, true, false}};
}

ObservedMaps maps(const std::string& prefix, const std::string& model, const std::string& drain) {
  return {{"/run/serve/routes_exact.map", {{prefix, "http-a"}}},
          {"/run/serve/models.map", {{model, "http-a"}}},
          {"/run/serve/node.map", {{"draining", drain}, {"routes", "{}"}}}};
}

TEST_CASE("observed: HAProxy in step with the table observes as the table itself") {
  CHECK(observedTable(kRunning, matching(), maps("/a", "a", "0")) == kRunning);
}

TEST_CASE("observed: unreported servers and maps keep their running values") {
  CHECK(observedTable(kRunning, {}, {}) == kRunning);
}

TEST_CASE("observed: hand edits show up, and the differ puts them back") {
  std::vector<ObservedServer> servers = matching();
  servers[0].maintenance = true;  // socat: set server http-a/slot1 state maint
  servers[2] = {"http-a", "slot3", "10.0.0.9", 8080, false, false};  // a stray server enabled
  const RoutingTable observed = observedTable(kRunning, servers, maps("", "a", "1"));
  CHECK(observed.backends[0].slots[0] == freeSlot());
  CHECK(observed.backends[0].slots[2] == Slot{SlotState::kActive, "", Endpoint{"10.0.0.9", 8080}});
  CHECK(observed.backends[0].route_prefix.empty());  // the exact-route entry was deleted
  CHECK(observed.draining);

  const Plan repair = diff(observed, kRunning);
  CHECK(repair.reload_reasons.empty());
  CHECK(repair.commands == std::vector<std::string>{
                               "set server http-a/slot1 addr 127.0.0.1 port 30000",
                               "set server http-a/slot1 state ready",
                               "set server http-a/slot1 health up",
                               "set server http-a/slot3 state maint",
                               "set server http-a/slot3 addr 127.0.0.1 port 1",
                               "add map /run/serve/routes_exact.map /a http-a",
                               "add map /run/serve/routes_prefix.map /a/ http-a",
                               "add map /run/serve/routes_rewrite.map /a /v2/models/a/infer",
                               "set map /run/serve/node.map routes {\"/a\":\"a\"}",
                               "set map /run/serve/node.map draining 0",
                           });
}

TEST_CASE("observed: a slot at another address than the manager put there loses its replica id") {
  std::vector<ObservedServer> servers = matching();
  servers[0].port = 31000;
  const RoutingTable observed = observedTable(kRunning, servers, maps("/a", "a", "0"));
  CHECK(observed.backends[0].slots[0] ==
        Slot{SlotState::kActive, "", Endpoint{"127.0.0.1", 31000}});
}

TEST_CASE("observed: gRPC servers give the slot's gRPC port; one out of service gives 0") {
  RoutingTable running = table({backend(
      "a", "/a",
      {withGrpc(active("a-1", 30000), 40000), withGrpc(draining("a-2", 30001), 40001), freeSlot()},
      3)});
  running.global.grpc_port = 9000;
  std::vector<ObservedServer> servers = matching();
  servers.push_back({"grpc-a", "slot1", "127.0.0.1", 40000, false, false});
  servers.push_back({"grpc-a", "slot2", "127.0.0.1", 40001, false, true});  // inherited drain
  servers.push_back({"grpc-a", "slot3", "127.0.0.1", 1, true, false});
  CHECK(observedTable(running, servers, maps("/a", "a", "0")) == running);

  std::vector<ObservedServer> by_hand = servers;
  by_hand[3].draining = true;     // `set server grpc-a/slot1 state drain` while HTTP is active
  by_hand[4].maintenance = true;  // `set server grpc-a/slot2 state maint`
  const RoutingTable observed = observedTable(running, by_hand, maps("/a", "a", "0"));
  CHECK(observed.backends[0].slots[0].endpoint == Endpoint{"127.0.0.1", 30000, 0});
  CHECK(observed.backends[0].slots[1].endpoint == Endpoint{"127.0.0.1", 30001, 0});
  CHECK(diff(observed, running).commands ==
        std::vector<std::string>{"set server grpc-a/slot1 addr 127.0.0.1 port 40000",
                                 "set server grpc-a/slot1 state ready",
                                 "set server grpc-a/slot2 addr 127.0.0.1 port 40001",
                                 "set server grpc-a/slot2 state drain"});

  std::vector<ObservedServer> moved = servers;
  moved[3].port = 41000;
  CHECK(observedTable(running, moved, maps("/a", "a", "0")).backends[0].slots[0].endpoint ==
        Endpoint{"127.0.0.1", 30000, 41000});
}

}  // namespace
}  // namespace serve::manager
