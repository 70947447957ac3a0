#include "haproxy-manager/model/desired_state.h"

#include <doctest/doctest.h>

#include "tests/unit/haproxy-manager/table_builders.h"

namespace serve::manager {
namespace {

using namespace serve::manager::testing;

ServeConfig config() {
  ServeConfig c;
  ApplicationSpec a;
  a.name = "a";
  a.route_prefix = "/a";
  DeploymentSpec ingress;
  ingress.name = "front";
  ingress.max_ongoing_requests = 7;
  ingress.model.kind = "noop";
  ingress.model.name = "a-model";
  DeploymentSpec second;
  second.name = "helper";
  second.model.name = "helper";
  a.deployments = {ingress, second};
  ApplicationSpec b;
  b.name = "b";
  b.route_prefix = "/b";
  DeploymentSpec only;
  only.name = "only";
  only.model.name = "b";
  b.deployments = {only};
  c.applications = {b, a};  // out of order on purpose: the table is sorted by name
  return c;
}

ReplicaRegistration replica(const std::string& id, const std::string& app, int port,
                            const std::string& deployment = "") {
  return ReplicaRegistration{id, app,
                             deployment.empty() ? (app == "a" ? "front" : "only") : deployment,
                             "127.0.0.1", port};
}

DesiredInputs inputs(const ServeConfig& c, std::vector<ReplicaRegistration> replicas,
                     int min_slots = 4) {
  DesiredInputs in;
  in.config = &c;
  in.global = testGlobal();
  in.min_server_slots = min_slots;
  in.replicas = std::move(replicas);
  return in;
}

TEST_CASE("desired: backends follow the config, sorted, with the ingress deployment's limits") {
  const ServeConfig c = config();
  const RoutingTable t = buildDesired(inputs(c, {}), RoutingTable{});
  REQUIRE(t.backends.size() == 2);
  CHECK(t.backends[0].application == "a");
  CHECK(t.backends[0].route_prefix == "/a");
  CHECK(t.backends[0].model_name == "a-model");
  CHECK(t.backends[0].max_ongoing_requests == 7);
  CHECK(t.backends[0].slots == std::vector<Slot>(4));
  CHECK(t.backends[1].application == "b");
}

TEST_CASE("desired: new replicas take the lowest free slots in id order, others are ignored") {
  const ServeConfig c = config();
  const RoutingTable t = buildDesired(
      inputs(c, {replica("a-2", "a", 30002), replica("a-1", "a", 30001),
                 replica("h-1", "a", 30009, "helper"), replica("x-1", "unknown-app", 30010)}),
      RoutingTable{});
  CHECK(t.backends[0].slots ==
        std::vector<Slot>{active("a-1", 30001), active("a-2", 30002), freeSlot(), freeSlot()});
  CHECK(t.backends[1].slots == std::vector<Slot>(4));
}

TEST_CASE("desired: assignments are sticky, departures drain, then free once idle") {
  const ServeConfig c = config();
  RoutingTable t = buildDesired(inputs(c, {replica("a-1", "a", 30001), replica("a-2", "a", 30002)}),
                                RoutingTable{});

  t = buildDesired(inputs(c, {replica("a-2", "a", 30002), replica("a-3", "a", 30003)}), t);
  CHECK(t.backends[0].slots == std::vector<Slot>{draining("a-1", 30001), active("a-2", 30002),
                                                 active("a-3", 30003), freeSlot()});

  // Not idle yet: stays draining. Idle: freed, and the next replica reuses the slot.
  t = buildDesired(inputs(c, {replica("a-2", "a", 30002), replica("a-3", "a", 30003)}), t);
  CHECK(t.backends[0].slots[0] == draining("a-1", 30001));
  DesiredInputs idle = inputs(
      c, {replica("a-2", "a", 30002), replica("a-3", "a", 30003), replica("a-4", "a", 30004)});
  idle.idle_draining_slots = {{"a", 0}};
  t = buildDesired(idle, t);
  CHECK(t.backends[0].slots == std::vector<Slot>{active("a-4", 30004), active("a-2", 30002),
                                                 active("a-3", 30003), freeSlot()});
}

TEST_CASE("desired: a draining replica that registers again is re-activated in place") {
  const ServeConfig c = config();
  RoutingTable t = buildDesired(inputs(c, {replica("a-1", "a", 30001)}), RoutingTable{});
  t = buildDesired(inputs(c, {}), t);
  CHECK(t.backends[0].slots[0] == draining("a-1", 30001));
  t = buildDesired(inputs(c, {replica("a-1", "a", 30001)}), t);
  CHECK(t.backends[0].slots[0] == active("a-1", 30001));
}

TEST_CASE(
    "desired: a replica re-registered at a new port drains the old slot and takes a new one") {
  const ServeConfig c = config();
  RoutingTable t = buildDesired(inputs(c, {replica("a-1", "a", 30001)}), RoutingTable{});
  t = buildDesired(inputs(c, {replica("a-1", "a", 30005)}), t);
  CHECK(t.backends[0].slots[0] == draining("a-1", 30001));
  CHECK(t.backends[0].slots[1] == active("a-1", 30005));
}

TEST_CASE("desired: capacity doubles when full and never shrinks") {
  const ServeConfig c = config();
  std::vector<ReplicaRegistration> five;
  for (int i = 0; i < 5; ++i) {
    five.push_back(replica("a-" + std::to_string(i), "a", 30000 + i));
  }
  RoutingTable t = buildDesired(inputs(c, five), RoutingTable{});
  CHECK(t.backends[0].slots.size() == 8);
  t = buildDesired(inputs(c, {}), t);  // all draining: still 8
  CHECK(t.backends[0].slots.size() == 8);
  CHECK(slotCapacity(0, 16) == 16);
  CHECK(slotCapacity(16, 16) == 16);
  CHECK(slotCapacity(17, 16) == 32);
  CHECK(slotCapacity(100, 16) == 128);
}

TEST_CASE("desired: draining slots count against capacity") {
  const ServeConfig c = config();
  RoutingTable t = buildDesired(inputs(c, {replica("a-1", "a", 30001), replica("a-2", "a", 30002),
                                           replica("a-3", "a", 30003), replica("a-4", "a", 30004)}),
                                RoutingTable{});
  // Four new replicas arrive while the old four drain: 8 occupied -> capacity 8.
  t = buildDesired(inputs(c, {replica("a-5", "a", 30005), replica("a-6", "a", 30006),
                              replica("a-7", "a", 30007), replica("a-8", "a", 30008)}),
                   t);
  CHECK(t.backends[0].slots.size() == 8);
  CHECK(t.backends[0].slots[4] == active("a-5", 30005));
  CHECK(t.backends[0].slots[0] == draining("a-1", 30001));
}

TEST_CASE("desired: a replica's gRPC port reaches its slot only where the node serves gRPC") {
  const ServeConfig c = config();
  ReplicaRegistration r = replica("a-1", "a", 30001);
  r.grpc_port = 40001;
  DesiredInputs with_grpc = inputs(c, {r});
  with_grpc.global.grpc_port = 9000;
  CHECK(buildDesired(with_grpc, RoutingTable{}).backends[0].slots[0].endpoint ==
        Endpoint{"127.0.0.1", 30001, 40001});
  CHECK(buildDesired(inputs(c, {r}), RoutingTable{}).backends[0].slots[0].endpoint ==
        Endpoint{"127.0.0.1", 30001, 0});

  // The same replica at a new gRPC port keeps its slot; only the slot's gRPC port changes.
  const RoutingTable before = buildDesired(with_grpc, RoutingTable{});
  with_grpc.replicas[0].grpc_port = 40002;
  const RoutingTable after = buildDesired(with_grpc, before);
  CHECK(after.backends[0].slots[0] ==
        Slot{SlotState::kActive, "a-1", Endpoint{"127.0.0.1", 30001, 40002}});
  CHECK(after.backends[0].slots[1].state == SlotState::kFree);
  // So does every replica when the node's gRPC listener is turned off.
  with_grpc.global.grpc_port = 0;
  CHECK(buildDesired(with_grpc, after).backends[0].slots[0] ==
        Slot{SlotState::kActive, "a-1", Endpoint{"127.0.0.1", 30001, 0}});
}

}  // namespace
}  // namespace serve::manager
