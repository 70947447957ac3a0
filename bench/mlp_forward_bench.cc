// The in-process baseline of bench/mlp_bench.sh: the forward pass that serve-replica calls,
// CpuMlpModel::forward() or, with --backend cuda, CudaMlpModel::forward() (host-to-device copy,
// one cuBLASLt matmul per layer, softmax, copy back, synchronised), timed alone on random
// inputs, with no HTTP, JSON, batcher or request copies around it. The replica's samples per
// second divided by this program's, at the same batch size, is the share of the model's
// throughput that serving leaves.
//
//   mlp_forward_bench --model PATH [--backend cpu|cuda] [--threads N] [--batch-sizes 1,8,32,64]
//                     [--seconds S]
//
// For each batch size: unmeasured warm-up passes (at least 3, at least 0.5 s), then passes back
// to back until S seconds have gone by. Prints a markdown table on stdout and, per batch size,
// one line
//   result batch_size=B passes=N seconds=T samples_per_s=X ms_per_pass=M p50_ms=P min_ms=Q
// for scripts. Exits 1 with a message on bad flags or a model that does not load.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "replica/runtime/mlp_cpu.h"
#include "replica/runtime/mlp_weights.h"
#include "replica/runtime/safetensors.h"

#ifdef SERVE_HAVE_CUDA
#include "replica/runtime/cuda/mlp_cuda.h"
#endif

// OpenBLAS's own description of its build, for the report (declared here rather than through
// cblas.h, whose include path is private to serve_replica_core).
extern "C" char* openblas_get_config(void);
extern "C" char* openblas_get_corename(void);

namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  std::string model;
  std::string backend = "cpu";
  int threads = 2;
  std::vector<int64_t> batch_sizes = {1, 8, 32, 64};
  double seconds = 3;
};

constexpr std::string_view kUsage =
    "usage: mlp_forward_bench --model PATH [--backend cpu|cuda] [--threads N] "
    "[--batch-sizes 1,8,32,64] [--seconds S]\n"
    "  --model PATH        safetensors MLP (models/README.md)\n"
    "  --backend B         cpu (OpenBLAS, default) or cuda (device 0 of CUDA_VISIBLE_DEVICES)\n"
    "  --threads N         OpenBLAS threads (default 2; the replica uses num_cpus)\n"
    "  --batch-sizes LIST  comma-separated rows per forward pass (default 1,8,32,64)\n"
    "  --seconds S         measured time per batch size (default 3)\n";

template <typename T>
bool parseNumber(std::string_view text, T& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return !text.empty() && ec == std::errc() && ptr == end;
}

bool parseList(std::string_view text, std::vector<int64_t>& out) {
  out.clear();
  while (true) {
    size_t comma = text.find(',');
    int64_t v = 0;
    if (!parseNumber(text.substr(0, comma), v) || v < 1 || v > 65536) {
      return false;
    }
    out.push_back(v);
    if (comma == std::string_view::npos) {
      return true;
    }
    text.remove_prefix(comma + 1);
  }
}

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "mlp_forward_bench: %s\n%s", message.c_str(), kUsage.data());
  std::exit(1);
}

// Accepts "--name value" and "--name=value".
Flags parseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage.data(), stdout);
      std::exit(0);
    }
    std::string_view name = arg;
    std::optional<std::string_view> value;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    }
    if (!value) {
      fail(std::string(name) + " needs a value");
    }
    if (name == "--model") {
      flags.model = std::string(*value);
    } else if (name == "--backend") {
      if (*value != "cpu" && *value != "cuda") {
        fail("--backend: expected cpu or cuda, got '" + std::string(*value) + "'");
      }
      flags.backend = std::string(*value);
    } else if (name == "--threads") {
      if (!parseNumber(*value, flags.threads) || flags.threads < 1 || flags.threads > 1024) {
        fail("--threads: expected an integer in 1..1024, got '" + std::string(*value) + "'");
      }
    } else if (name == "--batch-sizes") {
      if (!parseList(*value, flags.batch_sizes)) {
        fail("--batch-sizes: expected comma-separated integers in 1..65536, got '" +
             std::string(*value) + "'");
      }
    } else if (name == "--seconds") {
      char* end = nullptr;
      std::string text(*value);
      flags.seconds = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || !(flags.seconds > 0) || flags.seconds > 3600) {
        fail("--seconds: expected a number in (0, 3600], got '" + text + "'");
      }
    } else {
      fail("unknown flag " + std::string(name));
    }
  }
  if (flags.model.empty()) {
    fail("--model is required");
  }
  return flags;
}

double msSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Result {
  int64_t batch = 0;
  int64_t passes = 0;
  double seconds = 0;
  double samples_per_s = 0;
  double ms_per_pass = 0;
  double p50_ms = 0;
  double min_ms = 0;
};

// One forward pass of `rows` rows from `x` into `y`, whichever back end runs it.
using ForwardFn = std::function<void(const float* x, int64_t rows, std::vector<float>& y)>;

Result measure(const ForwardFn& forward, int64_t inputs, int64_t batch, double seconds,
               std::mt19937& rng) {
  // Inputs like the replica's: uniform in [0, 1), fresh per batch size.
  std::uniform_real_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(batch * inputs));
  for (float& v : x) {
    v = dist(rng);
  }
  std::vector<float> y;
  volatile float sink = 0;  // keeps the compiler from dropping passes

  Clock::time_point warm_start = Clock::now();
  for (int i = 0; i < 3 || msSince(warm_start) < 500; ++i) {
    forward(x.data(), batch, y);
    sink = sink + y[0];
  }

  std::vector<double> pass_ms;
  Clock::time_point start = Clock::now();
  double total_ms = 0;
  while (total_ms < seconds * 1e3) {
    Clock::time_point t = Clock::now();
    forward(x.data(), batch, y);
    sink = sink + y[0];
    pass_ms.push_back(msSince(t));
    total_ms = msSince(start);
  }

  Result r;
  r.batch = batch;
  r.passes = static_cast<int64_t>(pass_ms.size());
  r.seconds = total_ms / 1e3;
  r.samples_per_s = static_cast<double>(r.passes * batch) / r.seconds;
  r.ms_per_pass = total_ms / static_cast<double>(r.passes);
  std::sort(pass_ms.begin(), pass_ms.end());
  r.p50_ms = pass_ms[pass_ms.size() / 2];
  r.min_ms = pass_ms.front();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags = parseFlags(argc, argv);

  auto file = serve::SafetensorsFile::open(flags.model);
  if (!file.ok()) {
    std::fprintf(stderr, "mlp_forward_bench: %s\n", std::string(file.status().message()).c_str());
    return 1;
  }
  auto weights = serve::loadMlpWeights(*file);
  if (!weights.ok()) {
    std::fprintf(stderr, "mlp_forward_bench: %s: %s\n", flags.model.c_str(),
                 std::string(weights.status().message()).c_str());
    return 1;
  }
  std::string shape = std::to_string(weights->inputs());
  int64_t params = 0;
  for (const serve::DenseLayer& layer : weights->layers) {
    shape += "," + std::to_string(layer.out);
    params += layer.in * layer.out + layer.out;
  }
  const int64_t inputs = weights->inputs();
  std::printf("model: %s (layers %s, %.1fM parameters, %.0f MB of F32 weights)\n",
              flags.model.c_str(), shape.c_str(), static_cast<double>(params) / 1e6,
              static_cast<double>(params) * 4 / 1e6);

  std::unique_ptr<serve::CpuMlpModel> cpu;
#ifdef SERVE_HAVE_CUDA
  std::unique_ptr<serve::CudaMlpModel> cuda;
#endif
  ForwardFn forward;
  if (flags.backend == "cpu") {
    cpu = std::make_unique<serve::CpuMlpModel>(*std::move(weights), "bench", flags.threads);
    forward = [&cpu](const float* x, int64_t rows, std::vector<float>& y) {
      cpu->forward(x, rows, y);
    };
    std::printf("back end: cpu; OpenBLAS: %s (core %s), %d threads\n", openblas_get_config(),
                openblas_get_corename(), flags.threads);
  } else {
#ifdef SERVE_HAVE_CUDA
    if (serve::visibleCudaDevices() == 0) {
      std::fprintf(stderr, "mlp_forward_bench: --backend cuda: no CUDA device is visible\n");
      return 1;
    }
    int64_t max_rows = *std::max_element(flags.batch_sizes.begin(), flags.batch_sizes.end());
    auto model =
        serve::CudaMlpModel::create(*std::move(weights), "bench", 0, static_cast<int>(max_rows));
    if (!model.ok()) {
      std::fprintf(stderr, "mlp_forward_bench: %s\n",
                   std::string(model.status().message()).c_str());
      return 1;
    }
    cuda = *std::move(model);
    forward = [&cuda](const float* x, int64_t rows, std::vector<float>& y) {
      serve::Status st = cuda->forward(x, rows, y);
      if (!st.ok()) {
        std::fprintf(stderr, "mlp_forward_bench: forward pass failed: %s\n",
                     std::string(st.message()).c_str());
        std::exit(1);
      }
    };
    std::printf("back end: cuda; device 0: %s\n", serve::cudaDeviceName(0).c_str());
#else
    std::fprintf(stderr, "mlp_forward_bench: --backend cuda: this build has no CUDA back end\n");
    return 1;
#endif
  }
  std::printf("%.1f s measured per batch size after >= 0.5 s warm-up\n\n", flags.seconds);
  std::fflush(stdout);

  std::mt19937 rng(0);
  std::vector<Result> results;
  for (int64_t batch : flags.batch_sizes) {
    results.push_back(measure(forward, inputs, batch, flags.seconds, rng));
    const Result& r = results.back();
    std::fprintf(stderr, "mlp_forward_bench: batch %lld: %.0f samples/s, %.3f ms/pass\n",
                 static_cast<long long>(r.batch), r.samples_per_s, r.ms_per_pass);
  }

  std::printf("| batch size | passes | samples/s | ms per pass (mean) | p50 ms | min ms |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|\n");
  for (const Result& r : results) {
    std::printf("| %lld | %lld | %.0f | %.3f | %.3f | %.3f |\n", static_cast<long long>(r.batch),
                static_cast<long long>(r.passes), r.samples_per_s, r.ms_per_pass, r.p50_ms,
                r.min_ms);
  }
  std::printf("\n");
  for (const Result& r : results) {
    std::printf(
        "result batch_size=%lld passes=%lld seconds=%.3f samples_per_s=%.1f ms_per_pass=%.4f "
        "p50_ms=%.4f min_ms=%.4f\n",
        static_cast<long long>(r.batch), static_cast<long long>(r.passes), r.seconds,
        r.samples_per_s, r.ms_per_pass, r.p50_ms, r.min_ms);
  }
  return 0;
}
