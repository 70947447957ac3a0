#include "replica/runtime/cuda/mlp_cuda.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <type_traits>

#include "replica/runtime/cuda/softmax_kernel.h"
#include "replica/runtime/mlp_request.h"

// Every CUDA runtime and cuBLASLt call goes through one of these: a failure returns a Status
// that names the call as written, e.g. "cudaMalloc(&raw, bytes) failed: cudaErrorMemoryAllocation
// (out of memory)".
#define SERVE_CUDA_RETURN_IF_ERROR(call)             \
  do {                                               \
    const cudaError_t serve_cuda_err_ = (call);      \
    if (serve_cuda_err_ != cudaSuccess) {            \
      return cudaCallStatus(serve_cuda_err_, #call); \
    }                                                \
  } while (0)

#define SERVE_CUBLAS_RETURN_IF_ERROR(call)              \
  do {                                                  \
    const cublasStatus_t serve_cublas_st_ = (call);     \
    if (serve_cublas_st_ != CUBLAS_STATUS_SUCCESS) {    \
      return cublasCallStatus(serve_cublas_st_, #call); \
    }                                                   \
  } while (0)

namespace serve {

namespace {

Status cudaCallStatus(cudaError_t err, const char* call) {
  std::string message = std::string(call) + " failed: " + cudaGetErrorName(err) + " (" +
                        cudaGetErrorString(err) + ")";
  // Clear the runtime's last-error slot so a later, unrelated check does not see this one.
  // Sticky errors (a faulted kernel) stay; every later call reports them by name.
  cudaGetLastError();
  switch (err) {
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(message);
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

Status cublasCallStatus(cublasStatus_t st, const char* call) {
  std::string message = std::string(call) + " failed: " + cublasLtGetStatusName(st) + " (" +
                        cublasLtGetStatusString(st) + ")";
  if (st == CUBLAS_STATUS_ALLOC_FAILED) {
    return absl::ResourceExhaustedError(message);
  }
  return absl::InternalError(message);
}

// cuBLASLt's workspace: lets it pick split-K and stream-K kernels. 32 MiB is what NVIDIA
// recommends for Hopper; smaller parts simply do not use all of it.
constexpr size_t kWorkspaceBytes = size_t{32} << 20;

// Matmul plans are cached per batch row count. Row counts are bounded by the batcher in
// practice; the cap only keeps a pathological client from growing the cache without end.
constexpr size_t kMaxCachedPlans = 512;

// Owners for CUDA resources. Release errors are ignored: at process exit the runtime may be
// gone already, and there is nothing a destructor could do about a failure anyway.
struct DeviceFree {
  void operator()(float* p) const { cudaFree(p); }
};
struct HostFree {
  void operator()(float* p) const { cudaFreeHost(p); }
};
struct StreamDestroy {
  void operator()(cudaStream_t s) const { cudaStreamDestroy(s); }
};
struct LtDestroy {
  void operator()(cublasLtHandle_t h) const { cublasLtDestroy(h); }
};
struct MatmulDescDestroy {
  void operator()(cublasLtMatmulDesc_t d) const { cublasLtMatmulDescDestroy(d); }
};
struct LayoutDestroy {
  void operator()(cublasLtMatrixLayout_t l) const { cublasLtMatrixLayoutDestroy(l); }
};
struct PreferenceDestroy {
  void operator()(cublasLtMatmulPreference_t p) const { cublasLtMatmulPreferenceDestroy(p); }
};

using DeviceBuffer = std::unique_ptr<float, DeviceFree>;
using HostBuffer = std::unique_ptr<float, HostFree>;
using Stream = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamDestroy>;
using LtHandle = std::unique_ptr<std::remove_pointer_t<cublasLtHandle_t>, LtDestroy>;
using MatmulDesc = std::unique_ptr<std::remove_pointer_t<cublasLtMatmulDesc_t>, MatmulDescDestroy>;
using Layout = std::unique_ptr<std::remove_pointer_t<cublasLtMatrixLayout_t>, LayoutDestroy>;
using Preference =
    std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>, PreferenceDestroy>;

// cudaMalloc aligns to 256 bytes, which is also what cuBLASLt's heuristic assumes of every
// pointer by default (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES); each matrix therefore gets
// an allocation of its own rather than an offset into a shared one.
StatusOr<DeviceBuffer> deviceAlloc(size_t floats) {
  void* raw = nullptr;
  SERVE_CUDA_RETURN_IF_ERROR(cudaMalloc(&raw, std::max<size_t>(floats, 1) * sizeof(float)));
  return DeviceBuffer(static_cast<float*>(raw));
}

// Pinned, so the one copy in and the one copy out per batch run at full bus speed and
// asynchronously on the model's stream.
StatusOr<HostBuffer> hostAlloc(size_t floats) {
  void* raw = nullptr;
  SERVE_CUDA_RETURN_IF_ERROR(cudaMallocHost(&raw, std::max<size_t>(floats, 1) * sizeof(float)));
  return HostBuffer(static_cast<float*>(raw));
}

StatusOr<Layout> makeLayout(uint64_t rows, uint64_t cols, int64_t ld) {
  cublasLtMatrixLayout_t raw = nullptr;
  SERVE_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&raw, CUDA_R_32F, rows, cols, ld));
  return Layout(raw);
}

}  // namespace

int visibleCudaDevices() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver / no device is an answer here, not a pending error
    return 0;
  }
  return count;
}

std::string cudaDeviceName(int device) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return std::string(prop.name);
}

// The layout. cuBLASLt, like BLAS, reads matrices column-major, and a row-major matrix read
// column-major is its transpose at no cost. So, in cuBLASLt's terms, for a layer with `in`
// inputs and `out` outputs over `rows` samples:
//   X, row-major [rows, in]   is  Xᵀ, column-major [in, rows], ld = in      (operand B, op N)
//   W, row-major [out, in]    is  Wᵀ, column-major [in, out],  ld = in      (operand A, op T)
//   Y, row-major [rows, out]  is  Yᵀ, column-major [out, rows], ld = out    (C and D)
// and Y = X·Wᵀ + b is, transposed, Yᵀ = W·Xᵀ + b = op_T(Wᵀ)·op_N(Xᵀ) + b, i.e. a GEMM with
// m = out, n = rows, k = in, A = the weight buffer with TRANSA = T, B = the activations with
// TRANSB = N. The bias epilogue adds a vector of length m (D's row count) to every column of
// D, and a column of D is one sample: exactly b[o] added to output o of every sample. D written
// column-major [out, rows] with ld = out is Y row-major, ready to feed the next layer as its X
// or to go back to the host. Nothing is transposed or copied between layers.
struct CudaMlpModel::Impl {
  struct Layer {
    int64_t in = 0;
    int64_t out = 0;
    DeviceBuffer weight;   // [out, in] row-major, as uploaded
    DeviceBuffer bias;     // [out]
    MatmulDesc desc;       // TRANSA = T, TRANSB = N, the epilogue and the bias pointer
    Layout weight_layout;  // [in, out] column-major, ld = in
  };
  // What depends on the batch's row count: the activation layouts and the algorithm the
  // heuristic picked for that shape.
  struct LayerPlan {
    Layout x_layout;  // [in, rows] column-major, ld = in
    Layout y_layout;  // [out, rows] column-major, ld = out
    cublasLtMatmulAlgo_t algo{};
  };

  int device = 0;
  // Declared first so that they are destroyed last, after everything allocated through them.
  Stream stream;
  LtHandle lt;
  DeviceBuffer workspace;
  std::vector<Layer> layers;
  std::map<int64_t, std::vector<LayerPlan>> plans;

  // Batch buffers, all `capacity` rows: the staged inputs on both sides, two activation
  // buffers the layers alternate between (the last layer's output ends in one of them), and
  // the pinned outputs.
  int64_t capacity = 0;
  int64_t max_width = 0;  // the widest layer output
  HostBuffer host_x;
  HostBuffer host_y;
  DeviceBuffer x;
  DeviceBuffer act[2];

  ~Impl() {
    // A destructor may run on any thread; the buffers belong to `device`.
    cudaSetDevice(device);
    if (stream) {
      cudaStreamSynchronize(stream.get());
    }
  }

  Status ensureCapacity(int64_t rows) {
    if (rows <= capacity) {
      return absl::OkStatus();
    }
    // Allocations land on the calling thread's current device, which need not be ours.
    SERVE_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
    // Passes are synchronous, so nothing is in flight on the old buffers. Free before
    // allocating to keep the peak low; capacity is 0 until every buffer exists again.
    const int64_t grown = std::max(rows, 2 * capacity);
    capacity = 0;
    host_x.reset();
    host_y.reset();
    x.reset();
    act[0].reset();
    act[1].reset();
    const auto n = static_cast<size_t>(grown);
    const auto in = static_cast<size_t>(layers.front().in);
    const auto out = static_cast<size_t>(layers.back().out);
    auto hx = hostAlloc(n * in);
    if (!hx.ok()) {
      return hx.status();
    }
    auto hy = hostAlloc(n * out);
    if (!hy.ok()) {
      return hy.status();
    }
    auto dx = deviceAlloc(n * in);
    if (!dx.ok()) {
      return dx.status();
    }
    auto a0 = deviceAlloc(n * static_cast<size_t>(max_width));
    if (!a0.ok()) {
      return a0.status();
    }
    if (layers.size() > 1) {
      auto a1 = deviceAlloc(n * static_cast<size_t>(max_width));
      if (!a1.ok()) {
        return a1.status();
      }
      act[1] = std::move(*a1);
    }
    host_x = std::move(*hx);
    host_y = std::move(*hy);
    x = std::move(*dx);
    act[0] = std::move(*a0);
    capacity = grown;
    return absl::OkStatus();
  }

  StatusOr<const std::vector<LayerPlan>*> planFor(int64_t rows) {
    if (auto it = plans.find(rows); it != plans.end()) {
      return &it->second;
    }
    if (plans.size() >= kMaxCachedPlans) {
      plans.clear();
    }
    cublasLtMatmulPreference_t raw_pref = nullptr;
    SERVE_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&raw_pref));
    Preference pref(raw_pref);
    const uint64_t workspace_bytes = kWorkspaceBytes;
    SERVE_CUBLAS_RETURN_IF_ERROR(
        cublasLtMatmulPreferenceSetAttribute(pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &workspace_bytes, sizeof(workspace_bytes)));
    std::vector<LayerPlan> plan(layers.size());
    for (size_t l = 0; l < layers.size(); ++l) {
      const Layer& layer = layers[l];
      const auto n = static_cast<uint64_t>(rows);
      auto xl = makeLayout(static_cast<uint64_t>(layer.in), n, layer.in);
      if (!xl.ok()) {
        return xl.status();
      }
      auto yl = makeLayout(static_cast<uint64_t>(layer.out), n, layer.out);
      if (!yl.ok()) {
        return yl.status();
      }
      plan[l].x_layout = std::move(*xl);
      plan[l].y_layout = std::move(*yl);
      cublasLtMatmulHeuristicResult_t result{};
      int found = 0;
      SERVE_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulAlgoGetHeuristic(
          lt.get(), layer.desc.get(), layer.weight_layout.get(), plan[l].x_layout.get(),
          plan[l].y_layout.get(), plan[l].y_layout.get(), pref.get(), 1, &result, &found));
      if (found == 0) {
        return absl::InternalError("cublasLtMatmulAlgoGetHeuristic found no algorithm for layer " +
                                   std::to_string(l) + " (" + std::to_string(layer.in) + " -> " +
                                   std::to_string(layer.out) + ", " + std::to_string(rows) +
                                   " rows)");
      }
      plan[l].algo = result.algo;
    }
    return &plans.emplace(rows, std::move(plan)).first->second;
  }
};

StatusOr<std::unique_ptr<CudaMlpModel>> CudaMlpModel::create(MlpWeights weights,
                                                             const std::string& name, int device,
                                                             int max_batch_rows) {
  if (weights.layers.empty()) {
    return absl::InvalidArgumentError("model '" + name + "' has no layers");
  }
  const int devices = visibleCudaDevices();
  if (device < 0 || device >= devices) {
    return absl::FailedPreconditionError("model '" + name + "': CUDA device " +
                                         std::to_string(device) + " is not visible (" +
                                         std::to_string(devices) + " device(s))");
  }
  auto impl = std::make_unique<Impl>();
  impl->device = device;
  SERVE_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  cudaStream_t raw_stream = nullptr;
  SERVE_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&raw_stream, cudaStreamNonBlocking));
  impl->stream.reset(raw_stream);
  cublasLtHandle_t raw_lt = nullptr;
  SERVE_CUBLAS_RETURN_IF_ERROR(cublasLtCreate(&raw_lt));
  impl->lt.reset(raw_lt);
  auto workspace = deviceAlloc(kWorkspaceBytes / sizeof(float));
  if (!workspace.ok()) {
    return workspace.status();
  }
  impl->workspace = std::move(*workspace);

  for (size_t l = 0; l < weights.layers.size(); ++l) {
    DenseLayer& src = weights.layers[l];
    const bool last = l + 1 == weights.layers.size();
    if (src.in < 1 || src.out < 1 || src.weight.size() != static_cast<size_t>(src.in * src.out) ||
        src.bias.size() != static_cast<size_t>(src.out) ||
        (l > 0 && src.in != weights.layers[l - 1].out)) {
      return absl::InvalidArgumentError("model '" + name + "': layer " + std::to_string(l) +
                                        " has inconsistent shapes");
    }
    Impl::Layer layer;
    layer.in = src.in;
    layer.out = src.out;
    auto w = deviceAlloc(src.weight.size());
    if (!w.ok()) {
      return w.status();
    }
    auto b = deviceAlloc(src.bias.size());
    if (!b.ok()) {
      return b.status();
    }
    layer.weight = std::move(*w);
    layer.bias = std::move(*b);
    // Pageable sources: cudaMemcpy is synchronous here, which is what create() wants.
    SERVE_CUDA_RETURN_IF_ERROR(cudaMemcpy(layer.weight.get(), src.weight.data(),
                                          src.weight.size() * sizeof(float),
                                          cudaMemcpyHostToDevice));
    SERVE_CUDA_RETURN_IF_ERROR(cudaMemcpy(layer.bias.get(), src.bias.data(),
                                          src.bias.size() * sizeof(float), cudaMemcpyHostToDevice));

    // FP32 in, FP32 accumulate, no TF32: the results must agree with the CPU back end.
    cublasLtMatmulDesc_t raw_desc = nullptr;
    SERVE_CUBLAS_RETURN_IF_ERROR(
        cublasLtMatmulDescCreate(&raw_desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    layer.desc.reset(raw_desc);
    const int32_t trans_a = CUBLAS_OP_T;
    const int32_t trans_b = CUBLAS_OP_N;
    const uint32_t epilogue = last ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_RELU_BIAS;
    const float* bias_ptr = layer.bias.get();
    SERVE_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        layer.desc.get(), CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
    SERVE_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        layer.desc.get(), CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)));
    SERVE_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        layer.desc.get(), CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    SERVE_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        layer.desc.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr, sizeof(bias_ptr)));
    auto wl = makeLayout(static_cast<uint64_t>(src.in), static_cast<uint64_t>(src.out), src.in);
    if (!wl.ok()) {
      return wl.status();
    }
    layer.weight_layout = std::move(*wl);
    impl->max_width = std::max(impl->max_width, src.out);
    impl->layers.push_back(std::move(layer));

    // The device holds the values now; keep only the shape on the host.
    std::vector<float>().swap(src.weight);
    std::vector<float>().swap(src.bias);
  }
  Status st = impl->ensureCapacity(std::max(1, max_batch_rows));
  if (!st.ok()) {
    return st;
  }
  return std::unique_ptr<CudaMlpModel>(new CudaMlpModel(std::move(weights), name, std::move(impl)));
}

CudaMlpModel::CudaMlpModel(MlpWeights weights, const std::string& name, std::unique_ptr<Impl> impl)
    : weights_(std::move(weights)),
      inputs_(weights_.inputs()),
      outputs_(weights_.outputs()),
      impl_(std::move(impl)) {
  metadata_ = mlpMetadata(weights_, name, "cuda");
}

CudaMlpModel::~CudaMlpModel() = default;

int64_t CudaMlpModel::capacityRows() const { return impl_->capacity; }

// The same checks, in the same order and with the same words, as CpuMlpModel::validate: a
// client sees no difference between back ends.
Status CudaMlpModel::validate(const InferRequest& request) const {
  return validateMlpRequest(metadata_, request);
}

Status CudaMlpModel::runStaged(int64_t rows) {
  Impl& s = *impl_;
  // The batcher's thread is not the one that called create(), and the current device is
  // per thread.
  SERVE_CUDA_RETURN_IF_ERROR(cudaSetDevice(s.device));
  auto plan = s.planFor(rows);
  if (!plan.ok()) {
    return plan.status();
  }
  cudaStream_t stream = s.stream.get();
  SERVE_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(s.x.get(), s.host_x.get(),
                                             static_cast<size_t>(rows * inputs_) * sizeof(float),
                                             cudaMemcpyHostToDevice, stream));
  const float alpha = 1.0f;
  const float beta = 0.0f;
  const float* src = s.x.get();
  float* dst = nullptr;
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const Impl::Layer& layer = s.layers[l];
    const Impl::LayerPlan& p = (**plan)[l];
    dst = s.act[l % 2].get();
    // D = op_T(A)·op_N(B) + bias (then ReLU), with C = D and beta = 0; see Impl's comment.
    SERVE_CUBLAS_RETURN_IF_ERROR(cublasLtMatmul(
        s.lt.get(), layer.desc.get(), &alpha, layer.weight.get(), layer.weight_layout.get(), src,
        p.x_layout.get(), &beta, dst, p.y_layout.get(), dst, p.y_layout.get(), &p.algo,
        s.workspace.get(), kWorkspaceBytes, stream));
    src = dst;
  }
  if (weights_.softmax) {
    SERVE_CUDA_RETURN_IF_ERROR(launchSoftmaxRows(dst, rows, outputs_, stream));
  }
  SERVE_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(s.host_y.get(), dst,
                                             static_cast<size_t>(rows * outputs_) * sizeof(float),
                                             cudaMemcpyDeviceToHost, stream));
  SERVE_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return absl::OkStatus();
}

Status CudaMlpModel::forward(const float* x, int64_t rows, std::vector<float>& y) {
  if (rows < 0) {
    return absl::InvalidArgumentError("forward: negative row count " + std::to_string(rows));
  }
  y.resize(static_cast<size_t>(rows * outputs_));
  if (rows == 0) {
    return absl::OkStatus();
  }
  Status st = impl_->ensureCapacity(rows);
  if (!st.ok()) {
    return st;
  }
  std::memcpy(impl_->host_x.get(), x, static_cast<size_t>(rows * inputs_) * sizeof(float));
  st = runStaged(rows);
  if (!st.ok()) {
    return st;
  }
  std::memcpy(y.data(), impl_->host_y.get(), y.size() * sizeof(float));
  return absl::OkStatus();
}

std::vector<StatusOr<InferResponse>> CudaMlpModel::run(std::span<const InferRequest* const> batch) {
  // Requests are stacked row-wise, straight into the pinned staging buffer, so the whole batch
  // is one copy in, one matmul per layer and one copy out. A request whose bytes disagree with
  // its (validated) shape would overrun the buffer: it alone fails and its rows are left out.
  const size_t row_bytes = static_cast<size_t>(inputs_) * sizeof(float);
  std::vector<Status> slot(batch.size());
  int64_t rows = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Tensor& in = batch[i]->inputs.front();
    if (in.data.size() != static_cast<size_t>(in.shape[0]) * row_bytes) {
      slot[i] =
          absl::InvalidArgumentError("input '" + in.name + "': " + std::to_string(in.data.size()) +
                                     " bytes do not match shape " + shapeText(in.shape));
      continue;
    }
    rows += in.shape[0];
  }

  Status pass = impl_->ensureCapacity(rows);
  if (pass.ok() && rows > 0) {
    size_t offset = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (slot[i].ok()) {
        const Tensor& in = batch[i]->inputs.front();
        if (!in.data.empty()) {
          std::memcpy(impl_->host_x.get() + offset, in.data.data(), in.data.size());
        }
        offset += in.data.size() / sizeof(float);
      }
    }
    pass = runStaged(rows);
  }
  if (!pass.ok()) {
    pass = Status(pass.code(), "model '" + metadata_.name + "': " + messageOf(pass));
  }

  std::vector<StatusOr<InferResponse>> results;
  results.reserve(batch.size());
  int64_t row = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const InferRequest* req = batch[i];
    if (!slot[i].ok()) {
      results.emplace_back(slot[i]);
      continue;
    }
    if (!pass.ok()) {
      results.emplace_back(pass);
      continue;
    }
    int64_t n = req->inputs.front().shape[0];
    results.emplace_back(
        mlpResponse(metadata_, *req, impl_->host_y.get() + row * outputs_, n, outputs_));
    row += n;
  }
  return results;
}

}  // namespace serve
