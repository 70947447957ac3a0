#include "replica/runtime/model_factory.h"

#include <unistd.h>

#include <filesystem>

#include "replica/runtime/builtin_models.h"
#include "replica/runtime/mlp_cpu.h"
#include "replica/runtime/mlp_weights.h"
#include "replica/runtime/python/python_model.h"
#include "replica/runtime/safetensors.h"

#ifdef SERVE_HAVE_CUDA
#include "replica/runtime/cuda/mlp_cuda.h"
#endif

#include <spdlog/spdlog.h>

namespace serve {
namespace {

// Rows the GPU buffers hold before they first grow.
constexpr int kInitialGpuRows = 64;

}  // namespace

StatusOr<std::unique_ptr<Model>> createModel(const ModelSpec& spec, const ModelContext& context) {
  if (spec.kind == "noop") {
    return makeNoopModel(spec.name);
  }
  if (spec.kind == "sleep") {
    return makeSleepModel(spec.name,
                          std::chrono::microseconds(static_cast<int64_t>(spec.sleep_ms * 1000)));
  }
  if (spec.kind == "python") {
    python::PythonModelOptions options;
    options.spec = spec;
    options.application = context.application;
    options.route_prefix = context.route_prefix;
    options.config_dir = context.config_dir;
    options.replica_id = std::to_string(::getpid());
    if (const DeploymentSpec* d = context.deployment) {
      options.deployment = d->name;
      options.max_ongoing_requests = d->max_ongoing_requests;
      options.user_config_json = d->user_config_json;
      options.health_check_period_s = d->health_check_period_s;
      options.health_check_timeout_s = d->health_check_timeout_s;
    }
    StatusOr<std::unique_ptr<python::PythonModel>> model =
        python::PythonModel::create(std::move(options));
    if (!model.ok()) {
      return absl::Status(model.status().code(),
                          "model '" + spec.name + "': " + std::string(model.status().message()));
    }
    return std::unique_ptr<Model>(*std::move(model));
  }
  if (spec.kind == "mlp") {
    std::filesystem::path path(spec.path);
    if (path.is_relative() && !context.config_dir.empty()) {
      path = std::filesystem::path(context.config_dir) / path;
    }
    StatusOr<SafetensorsFile> file = SafetensorsFile::open(path.lexically_normal().string());
    if (!file.ok()) {
      return absl::InvalidArgumentError("model '" + spec.name + "': " + messageOf(file.status()));
    }
    StatusOr<MlpWeights> weights = loadMlpWeights(*file);
    if (!weights.ok()) {
      return absl::InvalidArgumentError("model '" + spec.name +
                                        "': " + messageOf(weights.status()));
    }
    if (context.want_gpu) {
#ifdef SERVE_HAVE_CUDA
      // Device 0 of those CUDA_VISIBLE_DEVICES leaves visible (the manager assigns one each).
      if (visibleCudaDevices() > 0) {
        auto gpu = CudaMlpModel::create(*std::move(weights), spec.name, 0, kInitialGpuRows);
        if (!gpu.ok()) {
          return absl::InternalError("model '" + spec.name + "': " + messageOf(gpu.status()));
        }
        spdlog::info("model '{}': forward passes run on CUDA device 0 ({})", spec.name,
                     cudaDeviceName(0));
        return std::unique_ptr<Model>(*std::move(gpu));
      }
      spdlog::warn(
          "model '{}': the deployment asks for a GPU but no CUDA device is visible; "
          "running on the CPU",
          spec.name);
#else
      spdlog::warn(
          "model '{}': the deployment asks for a GPU but this build has no CUDA back "
          "end; running on the CPU",
          spec.name);
#endif
    }
    return std::unique_ptr<Model>(
        std::make_unique<CpuMlpModel>(*std::move(weights), spec.name, context.cpu_threads));
  }
  return absl::InvalidArgumentError("model '" + spec.name + "': unknown kind '" + spec.kind + "'");
}

Status warmUp(Model& model) {
  InferRequest request;
  request.id = "warm-up";
  request.model = model.metadata().name;
  const auto& specs = model.metadata().inputs;
  if (specs.empty()) {
    request.inputs.push_back(Tensor{"warmup", DataType::kFp32, {1}, std::vector<std::byte>(4)});
  }
  for (const TensorSpec& spec : specs) {
    Tensor t{spec.name, spec.datatype, spec.shape, {}};
    for (int64_t& d : t.shape) {
      d = d < 0 ? 1 : d;
    }
    StatusOr<int64_t> count = shapeElementCount(t.shape);
    if (!count.ok()) {
      return count.status();
    }
    t.data.resize(static_cast<size_t>(*count) * dataTypeSize(t.datatype));
    request.inputs.push_back(std::move(t));
  }
  if (Status st = model.validate(request); !st.ok()) {
    return absl::InternalError("model '" + model.metadata().name +
                               "': warm-up request rejected: " + messageOf(st));
  }
  const InferRequest* batch[] = {&request};
  std::vector<StatusOr<InferResponse>> results = model.run(batch);
  if (results.size() != 1 || !results.front().ok()) {
    return absl::InternalError(
        "model '" + model.metadata().name + "': warm-up forward pass failed" +
        (results.empty() ? std::string() : ": " + messageOf(results.front().status())));
  }
  return absl::OkStatus();
}

}  // namespace serve
