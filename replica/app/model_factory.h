#pragma once

// From a deployment's model spec to a Model: the one place that knows every back end (the
// runtime's own, runtime/python's and, when built, runtime/cuda's). It sits in app, above them
// all, so that a back end never links the code that chooses it.
#include <memory>
#include <string>

#include "common/serve_config.h"
#include "common/status.h"
#include "replica/runtime/model.h"

namespace serve {

struct ModelContext {
  std::string config_dir;  // relative weight paths resolve against the config file's folder
  int cpu_threads = 1;     // BLAS threads for CPU back ends
  bool want_gpu = false;   // ray_actor_options.num_gpus > 0
  // For kind python: who the worker serves, and the deployment's Ray options.
  std::string application;
  std::string route_prefix;
  const DeploymentSpec* deployment = nullptr;
};

// Builds the model a deployment names. Errors name the model, the file and why it cannot load.
StatusOr<std::unique_ptr<Model>> createModel(const ModelSpec& spec, const ModelContext& context);

// Runs one forward pass on a zero-filled single-sample request shaped after the model's
// metadata, so that a replica reports ready only once its back end has computed something.
Status warmUp(Model& model);

}  // namespace serve
