// A closed-loop, ghz-like load generator for KServe v2 gRPC (inference.GRPCInferenceService/
// ModelInfer), for bench/grpc_bench.sh: it keeps N unary calls in flight, and each call that
// completes starts the next one at once, like wrk's connections do for HTTP.
//
//   grpc_load --target HOST:PORT --model NAME [--application NAME] --concurrency N
//             --duration S [--warmup S] [--raw] [--elements K] [--connections C]
//             [--threads T] [--timeout S]
//
// How: grpc++'s asynchronous API. Each of T driver threads owns a CompletionQueue and the
// in-flight slots i with i % T == thread; slot i sends over channel i % C. A slot's only state is
// "one call in flight", so the loop is Next() → record → start the next call: no per-call
// threads and no state machine. The alternative, N threads each blocking in a synchronous call,
// costs N threads switching on a machine whose cores are shared with the server being measured
// (bench/grpc_bench.sh runs on 2 cores); with the CompletionQueue the thread that waits is the
// thread that polls the sockets, so one thread carries every call.
//
// Channels: C distinct HTTP/2 connections (GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, so channels do
// not share one). By default C = 1, which is how gRPC clients normally talk to one server and what
// ghz does: the N calls are HTTP/2 streams multiplexed on one connection.
//
// Timing: OK calls that complete during [warmup, warmup + duration) are counted and their
// latency (call start to completion, in µs) is recorded; rps is those calls over `duration`.
// After the window no new call starts, and the calls still in flight are waited for; they count
// only if they fail. Every non-OK status is counted by its code name (errors_by_code: in and
// after the window; warmup_errors: before it), and the first message of each code is printed on
// stderr. An OK reply that is not the noop model's echo of the request's shape counts as the
// pseudo-code BAD_REPLY.
//
// Before the load, one blocking probe call must succeed (exit 2 with its status otherwise).
// Prints progress on stderr and one line on stdout:
//   result target=... model=... concurrency=N connections=C threads=T encoding=typed|raw
//   elements=K seconds=S requests=R rps=X p50_us=.. p90_us=.. p99_us=.. max_us=.. ok=R
//   errors=E errors_by_code=CODE:n,...|- warmup_errors=W
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/cli.h"
#include "proto/grpc_service.grpc.pb.h"
#include "replica/frontend/wire_status.h"

namespace {

using Clock = std::chrono::steady_clock;
using inference::GRPCInferenceService;
using inference::ModelInferRequest;
using inference::ModelInferResponse;
using serve::grpcCodeName;

struct Flags {
  std::string target;
  std::string model;
  std::string application;  // empty: no `application` metadata
  int concurrency = 0;
  double duration_s = 0;
  double warmup_s = 0;
  bool raw = false;
  int elements = 4;  // bench/post.lua sends [1,4] as well
  int connections = 1;
  int threads = 1;
  double timeout_s = 10;
};

// Exits 0 after --help and 1 on a usage error, naming the flag and the rule.
Flags parseFlags(int argc, char** argv) {
  Flags flags;
  CLI::App app(
      "grpc_load: closed-loop KServe v2 gRPC load (N ModelInfer calls in flight); prints one\n"
      "`result ...` line on stdout.",
      "grpc_load");
  app.get_formatter()->column_width(30);
  app.add_option("--target", flags.target, "the GRPCInferenceService to call (plaintext HTTP/2)")
      ->type_name("HOST:PORT")
      ->required()
      ->check(serve::cli::nonEmpty());
  app.add_option("--model", flags.model, "ModelInferRequest.model_name")
      ->type_name("NAME")
      ->required()
      ->check(serve::cli::nonEmpty());
  app.add_option("--application", flags.application,
                 "sent as request metadata `application` (HAProxy's gRPC routing)")
      ->type_name("NAME");
  app.add_option("--concurrency", flags.concurrency, "calls kept in flight (closed loop), 1-100000")
      ->type_name("N")
      ->required()
      ->transform(serve::cli::integerIn(1, 100000));
  app.add_option("--duration", flags.duration_s,
                 "measured seconds, 0.001-86400 (a number, optionally with an 's')")
      ->type_name("S")
      ->required()
      ->transform(serve::cli::secondsIn(0.001, 86400));
  app.add_option("--warmup", flags.warmup_s, "unmeasured seconds before the window (default 0)")
      ->type_name("S")
      ->transform(serve::cli::secondsIn(0, 86400));
  app.add_flag("--raw", flags.raw,
               "send the tensor in raw_input_contents (default: fp32_contents)");
  app.add_option("--elements", flags.elements,
                 "FP32 input of shape [1,K], values 1..K, K in 1-1048576 (default 4)")
      ->type_name("K")
      ->transform(serve::cli::integerIn(1, 1 << 20));
  app.add_option("--connections", flags.connections,
                 "HTTP/2 connections the calls are spread over, 1-1024 (default 1)")
      ->type_name("C")
      ->transform(serve::cli::integerIn(1, 1024));
  app.add_option("--threads", flags.threads,
                 "driver threads, each with its own CompletionQueue, 1-256 (default 1)")
      ->type_name("T")
      ->transform(serve::cli::integerIn(1, 256));
  app.add_option("--timeout", flags.timeout_s, "deadline of every call, 0.001-3600 (default 10)")
      ->type_name("S")
      ->transform(serve::cli::secondsIn(0.001, 3600));
  serve::cli::readInOrder(app);
  const serve::cli::ParseResult parsed =
      serve::cli::parse(app, std::vector<std::string>(argv + 1, argv + argc));
  if (parsed.help) {
    std::fputs(app.help().c_str(), stdout);
    std::exit(0);
  }
  if (!parsed.ok()) {
    std::fprintf(stderr, "grpc_load: %s\nRun `grpc_load --help` for usage.\n",
                 parsed.error.c_str());
    std::exit(1);
  }
  // An idle thread or connection would only add noise.
  flags.threads = std::min(flags.threads, flags.concurrency);
  flags.connections = std::min(flags.connections, flags.concurrency);
  return flags;
}

ModelInferRequest makeRequest(const Flags& flags) {
  ModelInferRequest request;
  request.set_model_name(flags.model);
  auto* input = request.add_inputs();
  input->set_name("x");
  input->set_datatype("FP32");
  input->add_shape(1);
  input->add_shape(flags.elements);
  std::vector<float> data(static_cast<size_t>(flags.elements));
  for (int i = 0; i < flags.elements; ++i) {
    data[static_cast<size_t>(i)] = static_cast<float>(i + 1);
  }
  if (flags.raw) {
    request.add_raw_input_contents(
        std::string(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float)));
  } else {
    for (float v : data) {
      input->mutable_contents()->add_fp32_contents(v);
    }
  }
  return request;
}

// The noop model echoes its input: one output of K floats, in the request's encoding.
bool isEcho(const ModelInferResponse& response, const Flags& flags) {
  if (response.outputs_size() != 1) {
    return false;
  }
  const size_t k = static_cast<size_t>(flags.elements);
  if (flags.raw) {
    return response.raw_output_contents_size() == 1 &&
           response.raw_output_contents(0).size() == k * sizeof(float);
  }
  return static_cast<size_t>(response.outputs(0).contents().fp32_contents_size()) == k;
}

constexpr char kBadReply[] = "BAD_REPLY";

// What one driver thread saw. Owned by that thread until it is joined.
struct ThreadResult {
  std::vector<uint32_t> latencies_us;  // OK calls completed in the window
  int64_t ok = 0;
  std::map<std::string, int64_t> errors;         // in the window, by code name
  std::map<std::string, int64_t> warmup_errors;  // before it
  std::map<std::string, std::string> first_message;
};

// One call in flight. The ClientContext cannot be reused, so every call gets a fresh one.
struct Slot {
  GRPCInferenceService::Stub* stub = nullptr;
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientAsyncResponseReader<ModelInferResponse>> reader;
  ModelInferResponse response;
  grpc::Status status;
  Clock::time_point started;
};

class LoadThread {
 public:
  LoadThread(const Flags& flags, const ModelInferRequest& request,
             std::vector<GRPCInferenceService::Stub*> stubs, Clock::time_point window_start,
             Clock::time_point window_end)
      : flags_(flags),
        request_(request),
        window_start_(window_start),
        window_end_(window_end),
        slots_(stubs.size()) {
    for (size_t i = 0; i < stubs.size(); ++i) {
      slots_[i].stub = stubs[i];
    }
  }

  // Runs on its own thread until the window has closed and every call has returned.
  ThreadResult run() {
    for (Slot& slot : slots_) {
      startCall(slot);
    }
    size_t in_flight = slots_.size();
    void* tag = nullptr;
    bool ok = false;
    while (in_flight > 0 && cq_.Next(&tag, &ok)) {
      Slot& slot = *static_cast<Slot*>(tag);
      const Clock::time_point done = Clock::now();
      record(slot, done);
      if (done < window_end_) {
        startCall(slot);
      } else {
        --in_flight;
      }
    }
    cq_.Shutdown();
    while (cq_.Next(&tag, &ok)) {
    }
    return std::move(result_);
  }

 private:
  void startCall(Slot& slot) {
    slot.context = std::make_unique<grpc::ClientContext>();
    slot.context->set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::microseconds(static_cast<int64_t>(flags_.timeout_s * 1e6)));
    if (!flags_.application.empty()) {
      slot.context->AddMetadata("application", flags_.application);
    }
    slot.response.Clear();
    slot.started = Clock::now();
    slot.reader = slot.stub->AsyncModelInfer(slot.context.get(), request_, &cq_);
    slot.reader->Finish(&slot.response, &slot.status, &slot);
  }

  void record(const Slot& slot, Clock::time_point done) {
    const bool in_window = done >= window_start_ && done < window_end_;
    std::string code;
    if (!slot.status.ok()) {
      code = grpcCodeName(slot.status.error_code());
    } else if (!isEcho(slot.response, flags_)) {
      code = kBadReply;
    }
    if (code.empty()) {
      if (in_window) {
        ++result_.ok;
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(done - slot.started);
        result_.latencies_us.push_back(
            static_cast<uint32_t>(std::min<int64_t>(us.count(), UINT32_MAX)));
      }
      return;
    }
    // A call that fails after the window closed is still counted: no failure goes unseen.
    ++(done < window_start_ ? result_.warmup_errors : result_.errors)[code];
    if (!result_.first_message.contains(code)) {
      result_.first_message[code] = code == kBadReply
                                        ? slot.response.ShortDebugString().substr(0, 200)
                                        : slot.status.error_message();
    }
  }

  const Flags& flags_;
  const ModelInferRequest& request_;
  const Clock::time_point window_start_;
  const Clock::time_point window_end_;
  grpc::CompletionQueue cq_;
  std::vector<Slot> slots_;  // never resized: the completion queue holds pointers into it
  ThreadResult result_;
};

std::vector<std::shared_ptr<grpc::Channel>> makeChannels(const Flags& flags) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < flags.connections; ++i) {
    grpc::ChannelArguments args;
    // Channels with equal arguments would share one subchannel, i.e. one TCP connection.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("grpc_load.connection", i);
    args.SetMaxReceiveMessageSize(-1);
    channels.push_back(
        grpc::CreateCustomChannel(flags.target, grpc::InsecureChannelCredentials(), args));
  }
  return channels;
}

// One blocking call, so that a wrong target, model or application fails fast and says why.
bool probe(GRPCInferenceService::Stub& stub, const Flags& flags, const ModelInferRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!flags.application.empty()) {
    context.AddMetadata("application", flags.application);
  }
  ModelInferResponse response;
  grpc::Status status = stub.ModelInfer(&context, request, &response);
  if (!status.ok()) {
    std::fprintf(stderr, "grpc_load: probe call to %s failed: %s: %s\n", flags.target.c_str(),
                 grpcCodeName(status.error_code()).c_str(), status.error_message().c_str());
    return false;
  }
  if (!isEcho(response, flags)) {
    std::fprintf(stderr, "grpc_load: probe call to %s: the reply is not an echo of [1,%d]: %s\n",
                 flags.target.c_str(), flags.elements, response.ShortDebugString().c_str());
    return false;
  }
  return true;
}

// Nearest rank: the smallest value with at least q of the samples at or below it.
uint32_t percentile(const std::vector<uint32_t>& sorted, double q) {
  if (sorted.empty()) {
    return 0;
  }
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

std::string codesText(const std::map<std::string, int64_t>& codes) {
  std::string text;
  for (const auto& [code, n] : codes) {
    text += (text.empty() ? "" : ",") + code + ":" + std::to_string(n);
  }
  return text.empty() ? "-" : text;
}

int64_t total(const std::map<std::string, int64_t>& codes) {
  int64_t n = 0;
  for (const auto& [code, count] : codes) {
    n += count;
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = parseFlags(argc, argv);
  const ModelInferRequest request = makeRequest(flags);
  const std::vector<std::shared_ptr<grpc::Channel>> channels = makeChannels(flags);
  std::vector<std::unique_ptr<GRPCInferenceService::Stub>> stubs;
  for (const auto& channel : channels) {
    stubs.push_back(GRPCInferenceService::NewStub(channel));
  }
  // Every connection gets one probe, so none is still being set up when the clock starts.
  for (const auto& stub : stubs) {
    if (!probe(*stub, flags, request)) {
      return 2;
    }
  }

  // Slot i → thread i % T, connection i % C.
  std::vector<std::vector<GRPCInferenceService::Stub*>> per_thread(flags.threads);
  for (int i = 0; i < flags.concurrency; ++i) {
    per_thread[i % flags.threads].push_back(stubs[i % flags.connections].get());
  }
  const Clock::time_point start = Clock::now();
  const auto window_start =
      start + std::chrono::microseconds(static_cast<int64_t>(flags.warmup_s * 1e6));
  const auto window_end =
      window_start + std::chrono::microseconds(static_cast<int64_t>(flags.duration_s * 1e6));
  std::fprintf(stderr,
               "grpc_load: %s model=%s concurrency=%d connections=%d threads=%d %s [1,%d], "
               "%.1f s warm-up + %.1f s\n",
               flags.target.c_str(), flags.model.c_str(), flags.concurrency, flags.connections,
               flags.threads, flags.raw ? "raw" : "typed", flags.elements, flags.warmup_s,
               flags.duration_s);

  std::vector<std::unique_ptr<LoadThread>> loads;
  std::vector<ThreadResult> results(flags.threads);
  std::vector<std::thread> threads;
  for (int t = 0; t < flags.threads; ++t) {
    loads.push_back(
        std::make_unique<LoadThread>(flags, request, per_thread[t], window_start, window_end));
  }
  for (int t = 0; t < flags.threads; ++t) {
    threads.emplace_back([&, t] { results[t] = loads[t]->run(); });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }

  ThreadResult all;
  for (ThreadResult& r : results) {
    all.ok += r.ok;
    all.latencies_us.insert(all.latencies_us.end(), r.latencies_us.begin(), r.latencies_us.end());
    for (const auto& [code, n] : r.errors) {
      all.errors[code] += n;
    }
    for (const auto& [code, n] : r.warmup_errors) {
      all.warmup_errors[code] += n;
    }
    all.first_message.insert(r.first_message.begin(), r.first_message.end());
  }
  for (const auto& [code, message] : all.first_message) {
    std::fprintf(stderr, "grpc_load: %s, first message: %s\n", code.c_str(), message.c_str());
  }
  std::sort(all.latencies_us.begin(), all.latencies_us.end());
  const int64_t errors = total(all.errors);
  const int64_t requests = all.ok + errors;
  std::printf(
      "result target=%s model=%s concurrency=%d connections=%d threads=%d encoding=%s "
      "elements=%d seconds=%.3f requests=%lld rps=%.1f p50_us=%u p90_us=%u p99_us=%u max_us=%u "
      "ok=%lld errors=%lld errors_by_code=%s warmup_errors=%lld\n",
      flags.target.c_str(), flags.model.c_str(), flags.concurrency, flags.connections,
      flags.threads, flags.raw ? "raw" : "typed", flags.elements, flags.duration_s,
      static_cast<long long>(requests), static_cast<double>(all.ok) / flags.duration_s,
      percentile(all.latencies_us, 0.50), percentile(all.latencies_us, 0.90),
      percentile(all.latencies_us, 0.99), all.latencies_us.empty() ? 0 : all.latencies_us.back(),
      static_cast<long long>(all.ok), static_cast<long long>(errors), codesText(all.errors).c_str(),
      static_cast<long long>(total(all.warmup_errors)));
  return 0;
}
