#include "haproxy-manager/supervise/port_allocator.h"

#include <doctest/doctest.h>

namespace serve::manager {
namespace {

using namespace std::chrono_literals;
const PortAllocator::Clock::time_point t0{};

TEST_CASE("ports: lowest free first, blocked never again, released only after quarantine") {
  PortAllocator ports("HTTP", 30000, 30004, 150s);
  CHECK(ports.allocate(t0).value() == 30000);
  CHECK(ports.allocate(t0).value() == 30001);
  ports.block(30002);
  CHECK(ports.allocate(t0).value() == 30003);
  ports.release(30000, t0);
  // 30000 is quarantined, 30002 blocked, the rest in use: exhausted.
  StatusOr<int> none = ports.allocate(t0 + 149s);
  REQUIRE_FALSE(none.ok());
  CHECK(messageOf(none.status()) ==
        "no free HTTP port in [30000, 30004): 2 in use, 1 quarantined after release, 1 blocked "
        "(they failed to bind); widen the range or run fewer replicas");
  CHECK(ports.allocate(t0 + 150s).value() == 30000);
}

TEST_CASE("ports: adopted ports count as in use and releasing an unknown port is harmless") {
  PortAllocator ports("gRPC", 40000, 40003, 1s);
  ports.markInUse(40000);
  CHECK(ports.allocate(t0).value() == 40001);
  ports.release(40002, t0);  // never allocated: no quarantine
  CHECK(ports.allocate(t0).value() == 40002);
  CHECK(ports.inUse(40000));
}

}  // namespace
}  // namespace serve::manager
