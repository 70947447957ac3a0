#pragma once

// Starts the real serve-replica binary for integration tests, learns its port from the JSON
// ready line, and stops it by PID. Only processes started here are ever signalled.
#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/child_process.h"

namespace serve::testing {

// A per-test scratch directory under /tmp, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& text) const;

 private:
  std::string path_;
};

struct ReplicaOptions {
  std::string config_yaml;
  std::string app = "app";
  std::vector<std::string> extra_args;
  std::map<std::string, std::string> env;  // added to a minimal environment
  bool pass_http_port = true;              // reserve a free loopback port and pass it
  // Put before the binary's path in argv, e.g. {"/usr/bin/prlimit", "--as=N", "--"}: a wrapper
  // that execs the replica, so the PID (and exit status) stay the replica's own.
  std::vector<std::string> command_prefix;
};

class ReplicaProcess {
 public:
  explicit ReplicaProcess(ReplicaOptions options);

  // Starts the binary and waits for the ready line; false (with the output so far in
  // output()) when it exits or times out first.
  bool start(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  int port() const { return port_; }
  // The gRPC port from the ready line; 0 when it said null (--grpc-port none).
  int grpcPort() const { return grpc_port_; }
  pid_t pid() const { return child_.pid(); }
  std::string url(const std::string& path) const;
  const std::string& readyLine() const { return ready_line_; }

  void signal(int sig);
  // Waits for the process to exit; its exit code, or nullopt on timeout. -N = killed by N.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  // Everything the process wrote to stdout and stderr so far (stderr is merged).
  std::string output() { return child_.output(); }
  const std::string& dir() const { return dir_.path(); }

 private:
  ReplicaOptions options_;
  TempDir dir_;
  ChildProcess child_;  // after dir_: destroyed (killed) before the directory goes
  int port_ = 0;
  int grpc_port_ = 0;
  std::string ready_line_;
};

// A loopback port nobody listens on right now (bound to port 0 and released).
int freeLoopbackPort();

}  // namespace serve::testing
