#include "common/process_launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstring>
#include <fstream>
#include <iterator>

extern char** environ;

namespace serve {
namespace {

// Pointers into `strings` with the terminating nullptr that exec wants. `strings` must outlive
// the result.
std::vector<char*> nullTerminated(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) {
    out.push_back(const_cast<char*>(s.c_str()));
  }
  out.push_back(nullptr);
  return out;
}

void setFileActions(const SpawnRequest& request, posix_spawn_file_actions_t& actions) {
  if (request.stdin_from_dev_null) {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  if (request.stdout_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, request.stdout_fd, 1);
  }
  if (request.stderr_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, request.stderr_fd, 2);
  }
  if (request.close_other_fds) {
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  }
}

// The manager blocks SIGTERM/SIGINT/SIGHUP for sigwait() and a child inherits the mask, so it is
// emptied; dispositions of the signals a process of ours might ignore go back to the defaults.
void setAttributes(const SpawnRequest& request, posix_spawnattr_t& attr) {
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (request.own_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attr, 0);
  }
  posix_spawnattr_setflags(&attr, flags);
  sigset_t mask;
  sigemptyset(&mask);
  posix_spawnattr_setsigmask(&attr, &mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGALRM, SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD,
                  SIGTTIN, SIGTTOU}) {
    sigaddset(&defaults, sig);
  }
  posix_spawnattr_setsigdefault(&attr, &defaults);
}

class SystemProcessLauncher final : public ProcessLauncher {
 public:
  StatusOr<pid_t> spawn(const SpawnRequest& request) override {
    if (request.argv.empty()) {
      return absl::InvalidArgumentError("spawn: no program given");
    }
    const std::vector<char*> argv = nullTerminated(request.argv);
    const std::vector<char*> envp =
        request.env.has_value() ? nullTerminated(*request.env) : std::vector<char*>{};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    setFileActions(request, actions);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    setAttributes(request, attr);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, argv[0], &actions, &attr, argv.data(),
                                 request.env.has_value() ? envp.data() : environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      return absl::Status(absl::ErrnoToStatusCode(rc), std::strerror(rc));
    }
    return pid;
  }

  bool signal(pid_t pid, int sig) override { return ::kill(pid, sig) == 0; }

  ChildStatus reap(pid_t pid) override {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == 0) {
      return {ChildStatus::State::kRunning, 0};
    }
    if (r == pid) {
      return {ChildStatus::State::kExited, status};
    }
    return {ChildStatus::State::kNotOurs, 0};
  }

  bool running(pid_t pid) override {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    // "<pid> (<comm>) <state> ...": comm may hold spaces and parentheses, so the state is
    // found after the last ')'.
    const std::size_t close = line.rfind(')');
    const bool zombie =
        close != std::string::npos && line.size() > close + 2 && line[close + 2] == 'Z';
    return !line.empty() && !zombie;
  }

  std::string commandLine(pid_t pid) override {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
};

}  // namespace

ProcessLauncher& systemProcessLauncher() {
  static SystemProcessLauncher launcher;
  return launcher;
}

}  // namespace serve
