#pragma once

// SIGTERM and SIGINT, turned into something a thread can wait for.
//
// Blocking the signals and taking them with sigwaitinfo() only works if every thread blocks
// them, and libraries start threads before main() runs (OpenBLAS starts its pool from a
// shared-library constructor): a SIGTERM delivered to such a thread would kill the process
// outright. So the signals get a handler, which runs on whichever thread receives them and only
// writes the signal number to a pipe (async-signal-safe); wait() reads the pipe.
#include <chrono>
#include <optional>

namespace serve {

class ShutdownSignals {
 public:
  // Installs the handlers; call once, early in main(). Also ignores SIGPIPE.
  static void install();

  // The next SIGTERM/SIGINT received, or nullopt when `timeout` passes first
  // (a negative timeout waits forever).
  static std::optional<int> wait(std::chrono::milliseconds timeout);
};

}  // namespace serve
