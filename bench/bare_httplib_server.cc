// The "bare cpp-httplib" baseline of bench/replica_bench.sh: serve::HttpServer, the replica's own
// HTTP front-end class (so the socket settings are the replica's by construction), answering
// POST /v2/models/noop/infer with a constant. The replica's requests per second divided by this
// server's is the share of the library's throughput that the replica's own work leaves.
//
//   bare_httplib_server --port N [--threads-min N] [--threads-max N]
//
// Prints {"event":"ready","http_port":N,"pid":N} on stdout once the port is bound, like
// serve-replica, and exits 0 on SIGTERM or SIGINT.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "bench/noop_reply.h"
#include "replica/app/shutdown_signals.h"
#include "replica/frontend/http_server.h"

namespace {

struct Flags {
  int port = 0;
  std::optional<size_t> threads_min;
  std::optional<size_t> threads_max;
};

constexpr std::string_view kUsage =
    "usage: bare_httplib_server --port N [--threads-min N] [--threads-max N]\n";

template <typename T>
bool parseNumber(std::string_view text, T& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end;
}

// Accepts "--name value" and "--name=value". Returns nullopt (after printing why) on bad input.
std::optional<Flags> parseFlags(int argc, char** argv) {
  Flags flags;
  bool have_port = false;
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
      std::fprintf(stderr, "bare_httplib_server: %.*s needs a value\n%s",
                   static_cast<int>(name.size()), name.data(), kUsage.data());
      return std::nullopt;
    }
    bool ok = false;
    if (name == "--port") {
      ok = parseNumber(*value, flags.port) && flags.port > 0 && flags.port < 65536;
      have_port = true;
    } else if (name == "--threads-min") {
      size_t n = 0;
      ok = parseNumber(*value, n) && n > 0;
      flags.threads_min = n;
    } else if (name == "--threads-max") {
      size_t n = 0;
      ok = parseNumber(*value, n) && n > 0;
      flags.threads_max = n;
    } else {
      std::fprintf(stderr, "bare_httplib_server: unknown flag %.*s\n%s",
                   static_cast<int>(name.size()), name.data(), kUsage.data());
      return std::nullopt;
    }
    if (!ok) {
      std::fprintf(stderr, "bare_httplib_server: bad value for %.*s: %.*s\n",
                   static_cast<int>(name.size()), name.data(), static_cast<int>(value->size()),
                   value->data());
      return std::nullopt;
    }
  }
  if (!have_port) {
    std::fprintf(stderr, "bare_httplib_server: --port is required\n%s", kUsage.data());
    return std::nullopt;
  }
  return flags;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<Flags> flags = parseFlags(argc, argv);
  if (!flags) {
    return 2;
  }

  // The replica's own signal handling (a handler feeding a pipe): blocking signals cannot work
  // here, OpenBLAS (linked through serve_replica_core) starts threads before main().
  serve::ShutdownSignals::install();

  serve::HttpServerOptions options;  // the replica's defaults: that is the point of the baseline
  if (flags->threads_min) {
    options.min_threads = *flags->threads_min;
  }
  if (flags->threads_max) {
    options.max_threads = *flags->threads_max;
  }
  if (options.min_threads > options.max_threads) {
    std::fprintf(stderr, "bare_httplib_server: --threads-min %zu exceeds --threads-max %zu\n",
                 options.min_threads, options.max_threads);
    return 2;
  }

  serve::HttpServer server(options);
  // The reply is a compile-time constant; set_content copies it into the response, as the
  // replica's handler must copy its serialised output.
  server.Post("/v2/models/noop/infer", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(serve::bench::kNoopReply.data(), serve::bench::kNoopReply.size(),
                    "application/json");
  });

  if (serve::Status status = server.bind(flags->port); !status.ok()) {
    std::fprintf(stderr, "bare_httplib_server: cannot bind: %s\n",
                 std::string(status.message()).c_str());
    return 1;
  }

  std::atomic<bool> serve_returned{false};
  std::atomic<bool> stop_requested{false};
  // Waits for SIGTERM/SIGINT, then stops the server: drain() first, so idle keep-alive
  // connections close now instead of holding serve() for their keep-alive timeout. stop() only
  // takes effect once serve() has started accepting, so a signal that arrives earlier is acted
  // on by repeating stop() until serve() has returned.
  std::thread signal_thread([&] {
    while (!serve_returned) {
      if (serve::ShutdownSignals::wait(std::chrono::milliseconds(100))) {
        stop_requested = true;
        server.drain();
        while (!serve_returned) {
          server.stop();
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      }
    }
  });

  std::printf("{\"event\":\"ready\",\"http_port\":%d,\"pid\":%d}\n", server.port(),
              static_cast<int>(getpid()));
  std::fflush(stdout);

  bool served = server.serve();
  serve_returned = true;
  signal_thread.join();  // it polls serve_returned, so it ends on its own

  if (!stop_requested && !served) {
    std::fprintf(stderr, "bare_httplib_server: serve() failed\n");
    return 1;
  }
  return 0;
}
