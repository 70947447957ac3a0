#include "haproxy-manager/supervise/gpus.h"

#include <doctest/doctest.h>

namespace serve::manager {
namespace {

ServeConfig gpuConfig(int replicas, double gpus) {
  ServeConfig c;
  ApplicationSpec app;
  app.name = "digits";
  DeploymentSpec d;
  d.name = "classifier";
  d.num_replicas = replicas;
  d.ray_actor_options.num_gpus = gpus;
  app.deployments = {d};
  c.applications = {app};
  return c;
}

TEST_CASE("gpus: demand beyond the node is refused with the count") {
  CHECK(checkGpuDemand(gpuConfig(2, 1), 2).ok());
  CHECK(checkGpuDemand(gpuConfig(4, 0.5), 2).ok());
  CHECK(checkGpuDemand(gpuConfig(3, 0), 0).ok());
  Status too_many = checkGpuDemand(gpuConfig(2, 1.5), 2);
  REQUIRE_FALSE(too_many.ok());
  CHECK(messageOf(too_many) ==
        "the config needs 4 GPUs (digits.classifier: 2 replicas x 1.5) but this node has 2");
  CHECK(messageOf(checkGpuDemand(gpuConfig(1, 1), 0)) ==
        "the config needs 1 GPU (digits.classifier: 1 replica x 1) but this node has 0");
}

TEST_CASE("cpus: a replica asking for more CPUs than the node has is refused") {
  ServeConfig c = gpuConfig(2, 0);
  c.applications[0].deployments[0].ray_actor_options.num_cpus = 2;
  CHECK(checkCpuDemand(c, 2).ok());
  c.applications[0].deployments[0].ray_actor_options.num_cpus = 5000;
  CHECK(messageOf(checkCpuDemand(c, 2)) ==
        "digits.classifier: ray_actor_options.num_cpus 5000 is more than this node's 2 CPUs "
        "(each replica runs that many compute threads)");
  c.applications[0].deployments[0].num_replicas = 0;  // scaled to zero: nothing starts
  CHECK(checkCpuDemand(c, 2).ok());
}

TEST_CASE("gpus: fractions share a device, whole numbers take free ones") {
  GpuPool pool(2);
  CHECK(pool.take(0.5).value() == std::vector<int>{0});
  CHECK(pool.take(0.5).value() == std::vector<int>{0});
  CHECK(pool.take(0.5).value() == std::vector<int>{1});
  CHECK_FALSE(pool.take(1).ok());  // device 1 is half used
  pool.give({1}, 0.5);
  CHECK(pool.take(1).value() == std::vector<int>{1});
  CHECK(pool.take(0).value().empty());
  CHECK(cudaVisibleDevices({0, 2}) == "0,2");
}

}  // namespace
}  // namespace serve::manager
