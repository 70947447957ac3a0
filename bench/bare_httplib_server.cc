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
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <thread>

#include "bench/noop_reply.h"
#include "common/cli.h"
#include "replica/app/shutdown_signals.h"
#include "replica/frontend/http_server.h"

namespace {

struct Flags {
  int port = 0;
  std::optional<size_t> threads_min;
  std::optional<size_t> threads_max;
};

// Returns nullopt (after printing the help, or why the command line is wrong) when there is
// nothing to serve; `exit_code` says how to leave.
std::optional<Flags> parseFlags(int argc, char** argv, int* exit_code) {
  Flags flags;
  CLI::App app(
      "bare_httplib_server: serve::HttpServer answering POST /v2/models/noop/infer with a\n"
      "constant (the bare cpp-httplib baseline of bench/replica_bench.sh).",
      "bare_httplib_server");
  app.add_option("--port", flags.port, "port to bind, 1-65535")
      ->type_name("N")
      ->required()
      ->transform(serve::cli::integerIn(1, 65535));
  app.add_option_function<size_t>(
         "--threads-min", [&flags](size_t n) { flags.threads_min = n; },
         "fewest connection threads (default: the replica's)")
      ->type_name("N")
      ->transform(serve::cli::integerIn(1, std::numeric_limits<int64_t>::max()));
  app.add_option_function<size_t>(
         "--threads-max", [&flags](size_t n) { flags.threads_max = n; },
         "most connection threads (default: the replica's)")
      ->type_name("N")
      ->transform(serve::cli::integerIn(1, std::numeric_limits<int64_t>::max()));
  serve::cli::readInOrder(app);
  const serve::cli::ParseResult parsed =
      serve::cli::parse(app, std::vector<std::string>(argv + 1, argv + argc));
  if (parsed.help) {
    std::fputs(app.help().c_str(), stdout);
    *exit_code = 0;
    return std::nullopt;
  }
  if (!parsed.ok()) {
    std::fprintf(stderr, "bare_httplib_server: %s\nRun `bare_httplib_server --help` for usage.\n",
                 parsed.error.c_str());
    *exit_code = 2;
    return std::nullopt;
  }
  return flags;
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  std::optional<Flags> flags = parseFlags(argc, argv, &exit_code);
  if (!flags) {
    return exit_code;
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
