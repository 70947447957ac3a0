#include "replica/app/model_factory.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <new>

#include "replica/runtime/builtin_models.h"
#include "replica/runtime/mlp_cpu.h"
#include "replica/runtime/mlp_weights.h"
#include "replica/runtime/python/python_model.h"
#include "replica/runtime/safetensors.h"

#ifdef SERVE_HAVE_CUDA
#include "replica/runtime/cuda/mlp_cuda.h"
#endif

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace serve {
namespace {

#ifdef SERVE_HAVE_CUDA
// Rows the GPU buffers hold before they first grow. (Only with CUDA: clang's
// -Wunused-const-variable fails a -Werror build without it.)
constexpr int kInitialGpuRows = 64;
#endif

// kind onnx's built-in class (python/haproxy_serve/onnx.py): a builder that opens the model and
// reports its inputs and outputs as the class's KServe metadata.
constexpr char kOnnxImportPath[] = "haproxy_serve.onnx:build_app";

// A model file named in the config: relative paths resolve against the config file's folder,
// so a config and its models move together.
std::string resolveModelPath(const std::string& path, const std::string& config_dir) {
  std::filesystem::path resolved(path);
  if (resolved.is_relative() && !config_dir.empty()) {
    resolved = std::filesystem::path(config_dir) / resolved;
  }
  return resolved.lexically_normal().string();
}

// kind onnx as the kind python model it runs as: ONNX Runtime through the Python worker rather
// than its C API, because ONNX Runtime's headers and libraries are not packaged for Debian 12
// while its PyPI wheels are, and the worker already carries KServe tensors without copies.
ModelSpec onnxAsPython(const ModelSpec& spec, const ModelContext& context) {
  ModelSpec python = spec;
  python.python.import_path = kOnnxImportPath;
  python.python.init_args_json = "[]";
  python.python.init_kwargs_json =
      nlohmann::json{
          {"path", resolveModelPath(spec.path, context.config_dir)},
          {"use_gpu", context.want_gpu},
          {"name", spec.name},
      }
          .dump();
  python.python.working_dir.clear();
  return python;
}

// kind mlp: the safetensors file's tensors copied into the CPU (or CUDA) back end.
StatusOr<std::unique_ptr<Model>> createMlpModel(const ModelSpec& spec, const std::string& path,
                                                const ModelContext& context) {
  StatusOr<SafetensorsFile> file = SafetensorsFile::open(path);
  if (!file.ok()) {
    return absl::InvalidArgumentError("model '" + spec.name + "': " + messageOf(file.status()));
  }
  StatusOr<MlpWeights> weights = loadMlpWeights(*file);
  if (!weights.ok()) {
    return absl::InvalidArgumentError("model '" + spec.name + "': " + messageOf(weights.status()));
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

// Why an allocation may have failed, for the message that replaces std::bad_alloc.
std::string memoryText(const std::string& path) {
  std::string out;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    out = absl::StrCat("the file is ", st.st_size, " bytes; ");
  }
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    return absl::StrCat(out, "an allocation failed under the address-space limit of ",
                        limit.rlim_cur, " bytes");
  }
  return out + "an allocation failed";
}

}  // namespace

StatusOr<std::unique_ptr<Model>> createModel(const ModelSpec& spec, const ModelContext& context) {
  if (spec.kind == "noop") {
    return makeNoopModel(spec.name);
  }
  if (spec.kind == "sleep") {
    return makeSleepModel(spec.name,
                          std::chrono::microseconds(static_cast<int64_t>(spec.sleep_ms * 1000)));
  }
  if (spec.kind == "python" || spec.kind == "onnx") {
    python::PythonModelOptions options;
    options.spec = spec.kind == "onnx" ? onnxAsPython(spec, context) : spec;
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
    const std::string path = resolveModelPath(spec.path, context.config_dir);
    // The file's sizes are checked before anything is allocated from them, but a valid model
    // may still be larger than the memory this process may use: that is a refusal to start,
    // not an abort.
    try {
      return createMlpModel(spec, path, context);
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError("model '" + spec.name + "': " + path +
                                          ": not enough memory to load the model (" +
                                          memoryText(path) + ")");
    }
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
