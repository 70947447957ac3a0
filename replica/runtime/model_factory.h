#pragma once

#include <memory>

#include "common/serve_config.h"
#include "common/status.h"
#include "replica/runtime/model.h"

namespace serve {

// Builds the model a deployment names. Errors name the model kind and why it cannot load.
StatusOr<std::unique_ptr<Model>> createModel(const ModelSpec& spec);

}  // namespace serve
