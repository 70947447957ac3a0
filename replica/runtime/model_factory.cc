#include "replica/runtime/model_factory.h"

#include "replica/runtime/builtin_models.h"

namespace serve {

StatusOr<std::unique_ptr<Model>> createModel(const ModelSpec& spec) {
  if (spec.kind == "noop") {
    return makeNoopModel(spec.name);
  }
  if (spec.kind == "sleep") {
    return makeSleepModel(spec.name,
                          std::chrono::microseconds(static_cast<int64_t>(spec.sleep_ms * 1000)));
  }
  if (spec.kind == "mlp") {
    // The safetensors loader and the CPU/CUDA back ends are the model-runtime issue's work;
    // until they land a replica refuses to start rather than serve something else.
    return absl::UnimplementedError("model '" + spec.name +
                                    "': kind 'mlp' is not supported by this build yet");
  }
  return absl::InvalidArgumentError("model '" + spec.name + "': unknown kind '" + spec.kind + "'");
}

}  // namespace serve
