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
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/cli.h"
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

// Exits 0 after --help and 1 on a usage error, naming the flag and the rule.
Flags parseFlags(int argc, char** argv) {
  Flags flags;
  CLI::App app(
      "mlp_forward_bench: the MLP's forward pass alone, samples/s per batch size (the in-process\n"
      "baseline of bench/mlp_bench.sh).",
      "mlp_forward_bench");
  app.get_formatter()->column_width(30);
  app.add_option("--model", flags.model, "safetensors MLP (models/README.md)")
      ->type_name("PATH")
      ->required()
      ->check(serve::cli::nonEmpty());
  app.add_option("--backend", flags.backend,
                 "cpu (OpenBLAS, default) or cuda (device 0 of CUDA_VISIBLE_DEVICES)")
      ->type_name("B")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--threads", flags.threads,
                 "OpenBLAS threads, 1-1024 (default 2; the replica uses num_cpus)")
      ->type_name("N")
      ->transform(serve::cli::integerIn(1, 1024));
  app.add_option("--batch-sizes", flags.batch_sizes,
                 "comma-separated rows per forward pass, each 1-65536 (default 1,8,32,64)")
      ->type_name("LIST")
      ->delimiter(',')
      ->allow_extra_args(false)  // one argument: "1,8", not "1 8"
      ->transform(serve::cli::integerIn(1, 65536));
  app.add_option("--seconds", flags.seconds, "measured time per batch size, (0, 3600] (default 3)")
      ->type_name("S")
      ->check(serve::cli::numberIn(0, 3600, /*lo_open=*/true));
  serve::cli::readInOrder(app);
  const serve::cli::ParseResult parsed =
      serve::cli::parse(app, std::vector<std::string>(argv + 1, argv + argc));
  if (parsed.help) {
    std::fputs(app.help().c_str(), stdout);
    std::exit(0);
  }
  if (!parsed.ok()) {
    std::fprintf(stderr, "mlp_forward_bench: %s\nRun `mlp_forward_bench --help` for usage.\n",
                 parsed.error.c_str());
    std::exit(1);
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
