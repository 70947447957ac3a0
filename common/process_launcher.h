#pragma once

// Starting, signalling and watching child processes, behind an interface: the manager's
// HAProxy controller and replica supervisor both go through it, so there is one posix_spawn
// with one set of rules for what a child inherits, and unit tests can stand in a fake that
// records spawns and signals and says when a pid exits, without running anything.
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace serve {

struct SpawnRequest {
  std::vector<std::string> argv;  // argv[0] is the program's path (no PATH search)
  // The child's whole environment, "NAME=value" each; nullopt: it inherits ours.
  std::optional<std::vector<std::string>> env;
  bool stdin_from_dev_null = false;  // else the child shares our stdin
  int stdout_fd = -1;                // becomes the child's stdout; -1: ours
  int stderr_fd = -1;                // becomes the child's stderr; -1: ours
  // A process group of its own: a terminal's Ctrl-C does not reach it, and a signal to the
  // group reaches the child's own children and nothing of ours.
  bool own_process_group = true;
  // Only 0, 1 and 2 cross exec: a child must not keep our listening sockets or pipes open.
  bool close_other_fds = true;
};

// What waitpid(pid, WNOHANG) found.
struct ChildStatus {
  enum class State {
    kRunning,  // still running (or stopped)
    kExited,   // reaped now; wait_status says how it ended
    kNotOurs,  // not a child of ours, or already reaped elsewhere
  };
  State state = State::kRunning;
  int wait_status = 0;  // for WIFEXITED/WEXITSTATUS/WTERMSIG, when kExited
};

class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;

  // Starts the program. Whatever the request says, the child starts with an empty signal mask
  // and default dispositions for the signals we block or handle (a child inherits a blocked
  // SIGTERM, and could then not be asked to stop). On failure the status carries the errno's
  // code and only strerror's text, so the caller says what could not be started.
  virtual StatusOr<pid_t> spawn(const SpawnRequest& request) = 0;
  // kill(pid, sig); false when it failed (no such process, not permitted).
  virtual bool signal(pid_t pid, int sig) = 0;
  // Reaps our child if it exited, without waiting.
  virtual ChildStatus reap(pid_t pid) = 0;
  // Whether `pid` runs, child of ours or not: false when there is no such process or it is a
  // zombie (a process we did not start is reaped by its parent or init, not by us).
  virtual bool running(pid_t pid) = 0;
  // The process's command line as /proc/<pid>/cmdline has it (arguments separated by NULs);
  // "" when it is gone.
  virtual std::string commandLine(pid_t pid) = 0;
};

// The real thing: posix_spawn, kill, waitpid and /proc. Stateless, shared.
ProcessLauncher& systemProcessLauncher();

}  // namespace serve
