#include "haproxy-manager/supervise/gpus.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "haproxy-manager/model/desired_state.h"

#ifdef SERVE_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace serve::manager {

int visibleGpuCount() {
#ifdef SERVE_HAVE_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    return 0;
  }
  return count;
#else
  return 0;
#endif
}

Status checkGpuDemand(const ServeConfig& config, int gpu_count) {
  double total = 0;
  std::vector<std::string> parts;
  for (const ApplicationSpec& app : config.applications) {
    const DeploymentSpec& d = ingressDeployment(app);
    const double need = d.ray_actor_options.num_gpus;
    if (need <= 0 || d.num_replicas == 0) {
      continue;
    }
    // A fraction shares a device; whole numbers take whole devices.
    total += need < 1 ? std::ceil(d.num_replicas * need) : d.num_replicas * std::ceil(need);
    parts.push_back(absl::StrCat(app.name, ".", d.name, ": ", d.num_replicas, " replica",
                                 d.num_replicas == 1 ? "" : "s", " x ", need));
  }
  if (total <= gpu_count) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("the config needs ", total, " GPU", total == 1 ? "" : "s", " (",
                   absl::StrJoin(parts, ", "), ") but this node has ", gpu_count));
}

Status checkCpuDemand(const ServeConfig& config, int cpu_count) {
  for (const ApplicationSpec& app : config.applications) {
    for (const DeploymentSpec& d : app.deployments) {
      if (d.num_replicas > 0 && d.ray_actor_options.num_cpus > cpu_count) {
        return absl::FailedPreconditionError(absl::StrCat(
            app.name, ".", d.name, ": ray_actor_options.num_cpus ", d.ray_actor_options.num_cpus,
            " is more than this node's ", cpu_count, " CPU", cpu_count == 1 ? "" : "s",
            " (each replica runs that many compute threads)"));
      }
    }
  }
  return absl::OkStatus();
}

StatusOr<std::vector<int>> GpuPool::take(double amount) {
  if (amount <= 0) {
    return std::vector<int>{};
  }
  if (amount < 1) {
    for (std::size_t i = 0; i < used_.size(); ++i) {
      if (used_[i] + amount <= 1.0 + 1e-9) {
        used_[i] += amount;
        return std::vector<int>{static_cast<int>(i)};
      }
    }
  } else {
    std::vector<int> devices;
    const auto whole = static_cast<std::size_t>(std::ceil(amount));
    for (std::size_t i = 0; i < used_.size() && devices.size() < whole; ++i) {
      if (used_[i] == 0) {
        devices.push_back(static_cast<int>(i));
      }
    }
    if (devices.size() == whole) {
      for (int d : devices) {
        used_[static_cast<std::size_t>(d)] = 1.0;
      }
      return devices;
    }
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "no GPU capacity left for ", amount, " GPU(s) on this node (", used_.size(), " device(s))"));
}

void GpuPool::give(const std::vector<int>& devices, double amount) {
  for (int d : devices) {
    double& u = used_[static_cast<std::size_t>(d)];
    u = amount < 1 ? std::max(0.0, u - amount) : 0.0;
  }
}

void GpuPool::reserve(const std::vector<int>& devices, double amount) {
  for (int d : devices) {
    if (d >= 0 && static_cast<std::size_t>(d) < used_.size()) {
      double& u = used_[static_cast<std::size_t>(d)];
      u = amount < 1 ? std::min(1.0, u + amount) : 1.0;
    }
  }
}

std::string cudaVisibleDevices(const std::vector<int>& devices) {
  return absl::StrJoin(devices, ",");
}

}  // namespace serve::manager
