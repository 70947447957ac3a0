#pragma once

// GPUs on the node and their assignment to replicas through CUDA_VISIBLE_DEVICES.
#include <string>
#include <vector>

#include "common/serve_config.h"
#include "common/status.h"

namespace serve::manager {

// Devices visible to this process (the CUDA runtime, so CUDA_VISIBLE_DEVICES applies); 0 when
// the build has no CUDA or no driver answers.
int visibleGpuCount();

// Refuses a config whose ingress deployments need more GPUs than the node has, e.g.
// "the config needs 3 GPUs (digits.classifier: 2 replicas x 1.5) but this node has 2".
Status checkGpuDemand(const ServeConfig& config, int gpu_count);

// Each replica's ray_actor_options.num_cpus fits the node (`cpu_count` logical CPUs): a replica
// runs ceil(num_cpus) compute threads, and one asking for more CPUs than exist would only fail
// at start, again and again. FailedPrecondition naming the deployment, its ask and the count.
Status checkCpuDemand(const ServeConfig& config, int cpu_count);

// Tracks how much of each device is taken. Fractions share a device (first fit); whole numbers
// take that many entirely free devices.
class GpuPool {
 public:
  explicit GpuPool(int count) : used_(static_cast<std::size_t>(count), 0.0) {}
  // The devices for one replica needing `amount` (0 → none), or an error when they are taken.
  StatusOr<std::vector<int>> take(double amount);
  void give(const std::vector<int>& devices, double amount);
  // Marks devices taken that an adopted replica already uses.
  void reserve(const std::vector<int>& devices, double amount);

 private:
  std::vector<double> used_;  // per device, in [0, 1]
};

// "0,2": the value of CUDA_VISIBLE_DEVICES for these devices.
std::string cudaVisibleDevices(const std::vector<int>& devices);

}  // namespace serve::manager
