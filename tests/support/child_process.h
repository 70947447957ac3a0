#pragma once

// A child process for integration tests: started with an explicit argv and environment, its
// stdout and stderr read continuously by a thread (so a chatty child never blocks on a full
// pipe), and ready once it prints a JSON line starting with {"event":"ready". Only processes
// started here are ever signalled, by PID.
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace serve::testing {

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();  // SIGKILLs the process if it is still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts argv[0] with exactly `env` (NAME -> value). False when fork/exec fails.
  bool spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env);
  // Waits for the ready line; empty when the process exits or the timeout passes first.
  std::optional<std::string> waitForReady(std::chrono::milliseconds timeout);

  pid_t pid() const { return pid_; }
  void signal(int sig);
  // Waits for the process to exit; its exit code, or nullopt on timeout. -N = killed by N.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  // Everything the process wrote to stdout and stderr so far.
  std::string output() const;

 private:
  void readLoop(int fd);

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::thread reader_;
  mutable std::mutex mu_;  // guards output_ and eof_
  bool eof_ = false;       // the reader saw the end of the child's output
  std::condition_variable eof_cv_;
  std::string output_;
};

}  // namespace serve::testing
