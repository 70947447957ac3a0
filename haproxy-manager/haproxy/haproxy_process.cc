#include "haproxy-manager/haproxy/haproxy_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/process_launcher.h"
#include "common/unique_fd.h"

namespace serve::manager {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kPollInterval(20);
constexpr const char* kBinaryVariable = "RAY_SERVE_HAPROXY_BINARY_PATH";

using Fd = UniqueFd;

Status errnoStatus(const std::string& what, int err) {
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(what, ": ", std::strerror(err)));
}

milliseconds toMillis(double seconds) { return milliseconds(static_cast<int64_t>(seconds * 1000)); }

std::string describeExit(int status) {
  if (WIFEXITED(status)) {
    return absl::StrCat("exit code ", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)),
                        ")");
  }
  return absl::StrCat("wait status ", status);
}

// Empty when `path` is an executable regular file, else why not.
std::string notExecutableReason(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return std::strerror(errno);
  }
  if (!S_ISREG(st.st_mode)) {
    return "not a regular file";
  }
  if (::access(path.c_str(), X_OK) != 0) {
    return "not executable";
  }
  return "";
}

// Spawns argv[0] with stdin from /dev/null, stdout and stderr on the given descriptors, in a
// process group of its own (so a signal to the group reaches the master and its workers and
// nothing of ours), default signal dispositions, an empty signal mask, and no other inherited
// descriptor: HAProxy must not keep the manager's listening sockets open.
StatusOr<pid_t> spawn(const std::vector<std::string>& args, int out_fd, int err_fd) {
  SpawnRequest request;
  request.argv = args;
  request.stdin_from_dev_null = true;
  request.stdout_fd = out_fd;
  request.stderr_fd = err_fd;
  request.own_process_group = true;
  request.close_other_fds = true;
  StatusOr<pid_t> pid = systemProcessLauncher().spawn(request);
  if (!pid.ok()) {
    return absl::Status(pid.status().code(),
                        absl::StrCat("cannot start ", args[0], ": ", messageOf(pid.status())));
  }
  return pid;
}

// Reaps `pid` if it exits within `timeout`; returns its wait status, or nullopt if it is still
// running.
std::optional<int> waitReap(pid_t pid, milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return status;
    }
    if (r < 0 && errno != EINTR) {
      return -1;  // not our child any more (already reaped)
    }
    if (Clock::now() >= deadline) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
}

enum class ChildState { kRunning, kExited, kNotOurs };

// Whether our child `pid` has exited, without reaping it: an unreaped child keeps its pid, and
// so its process-group id, ours. kNotOurs: it was reaped elsewhere and the pid may be reused.
ChildState childState(pid_t pid) {
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return errno == ECHILD ? ChildState::kNotOurs : ChildState::kRunning;
  }
  return info.si_pid == pid ? ChildState::kExited : ChildState::kRunning;
}

// Waits until our child `pid` is no longer running; false on timeout.
bool waitNotRunning(pid_t pid, milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (childState(pid) == ChildState::kRunning) {
    if (Clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

// No such process, or a zombie waiting for a parent that is not us (workers are the master's
// children; once the master is gone they are reparented, and reaped whenever init gets to it).
bool processGone(int pid) {
  if (::kill(pid, 0) != 0) {
    return errno == ESRCH;
  }
  StatusOr<std::string> stat = readWholeFile(absl::StrCat("/proc/", pid, "/stat"), "stat");
  if (!stat.ok()) {
    return true;
  }
  // "<pid> (<comm>) <state> ..."; comm may hold spaces and parentheses, so look after the last ')'.
  const size_t close = stat->rfind(')');
  return close != std::string::npos && close + 2 < stat->size() && (*stat)[close + 2] == 'Z';
}

// Whether `pid` still runs with `config_path` as one of its arguments: HAProxy keeps its
// argv ("haproxy -sf 4187 -x sockpair@4 -W -S ... -f <config>") in the master and every
// worker, so a recycled pid belonging to anything else does not match.
bool runsConfig(int pid, const std::string& config_path) {
  StatusOr<std::string> cmdline =
      readWholeFile(absl::StrCat("/proc/", pid, "/cmdline"), "command line");
  if (!cmdline.ok()) {
    return false;
  }
  for (absl::string_view arg : absl::StrSplit(*cmdline, '\0')) {
    if (arg == config_path) {
      return true;
    }
  }
  return false;
}

// Everything in the file behind `fd` from `offset` on.
std::string readFrom(int fd, off_t offset) {
  std::string text;
  char buffer[16 * 1024];
  ssize_t n = 0;
  while ((n = ::pread(fd, buffer, sizeof(buffer), offset)) > 0) {
    text.append(buffer, static_cast<size_t>(n));
    offset += n;
  }
  return text;
}

// The last `max_lines` lines of `text`.
std::string lastLines(absl::string_view text, size_t max_lines) {
  std::vector<absl::string_view> all =
      absl::StrSplit(absl::StripTrailingAsciiWhitespace(text), '\n');
  if (all.size() > max_lines) {
    all.erase(all.begin(), all.end() - static_cast<std::ptrdiff_t>(max_lines));
  }
  return absl::StrJoin(all, "\n");
}

}  // namespace

std::string masterSocketPathFor(const std::string& admin_socket_path) {
  return (std::filesystem::path(admin_socket_path).parent_path() / "master.sock").string();
}

StatusOr<std::string> HaproxyController::resolveBinary(const std::string& configured,
                                                       const EnvLookup& env) {
  std::string chosen = configured;
  if (chosen.empty()) {
    chosen = env(kBinaryVariable).value_or("");
  }
  if (!chosen.empty()) {
    if (std::string why = notExecutableReason(chosen); !why.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kBinaryVariable, "=", chosen, ": not an executable file (", why, ")"));
    }
    return chosen;
  }
  const std::string path = env("PATH").value_or("/usr/local/bin:/usr/bin:/bin");
  std::vector<std::string> dirs = absl::StrSplit(path, ':');
  for (const char* dir : {"/usr/local/sbin", "/usr/sbin", "/sbin"}) {
    dirs.emplace_back(dir);
  }
  for (const std::string& dir : dirs) {
    const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/haproxy";
    if (notExecutableReason(candidate).empty()) {
      return candidate;
    }
  }
  return absl::NotFoundError(absl::StrCat(
      "haproxy not found on PATH (", path,
      ") nor in /usr/local/sbin, /usr/sbin, /sbin: install it (apt-get install haproxy) or set ",
      kBinaryVariable, " to an HAProxy binary"));
}

StatusOr<std::unique_ptr<HaproxyController>> HaproxyController::create(HaproxyOptions options,
                                                                       const EnvLookup& env) {
  if (options.config_path.empty() || options.admin_socket_path.empty() || options.log_dir.empty()) {
    return absl::InvalidArgumentError(
        "HAProxy controller: config path, admin socket path and log directory are required");
  }
  StatusOr<std::string> binary = resolveBinary(options.binary, env);
  if (!binary.ok()) {
    return binary.status();
  }
  options.binary = *binary;
  if (options.master_socket_path.empty()) {
    options.master_socket_path = masterSocketPathFor(options.admin_socket_path);
  }
  if (options.master_socket_path.find(',') != std::string::npos) {
    // `-S` takes "<path>,<bind option>,..." so a comma cannot be part of the path.
    return absl::InvalidArgumentError(absl::StrCat(
        "HAProxy master socket path must not contain ',': ", options.master_socket_path));
  }
  std::error_code error;
  std::filesystem::create_directories(options.log_dir, error);
  if (error) {
    return absl::Status(
        absl::ErrnoToStatusCode(error.value()),
        absl::StrCat(options.log_dir, ": cannot create log directory: ", error.message()));
  }
  return std::unique_ptr<HaproxyController>(new HaproxyController(std::move(options)));
}

HaproxyController::HaproxyController(HaproxyOptions options)
    : options_(std::move(options)),
      admin_(options_.admin_socket_path, toMillis(options_.command_timeout_s)),
      // The master answers `reload` only when the attempt is over on 2.7+, so its exchanges
      // get the startup budget; polls are still bounded by their own deadlines.
      master_cli_(options_.master_socket_path, toMillis(options_.startup_timeout_s)) {}

HaproxyController::~HaproxyController() { stop(0); }

std::string HaproxyController::stdoutPath() const {
  return (std::filesystem::path(options_.log_dir) / "haproxy.stdout.log").string();
}

std::string HaproxyController::stderrPath() const {
  return (std::filesystem::path(options_.log_dir) / "haproxy.stderr.log").string();
}

off_t HaproxyController::stderrSize() const {
  struct stat st {};
  return ::stat(stderrPath().c_str(), &st) == 0 ? st.st_size : 0;
}

std::string HaproxyController::stderrSince(off_t since) const {
  // The log is appended to for the manager's lifetime: read only the new part.
  Fd in(::open(stderrPath().c_str(), O_RDONLY | O_CLOEXEC));
  return in.get() < 0 ? "" : readFrom(in.get(), since);
}

std::string HaproxyController::stderrTail(off_t since) const {
  const std::string fresh = stderrSince(since);
  if (absl::StripAsciiWhitespace(fresh).empty()) {
    return absl::StrCat("; nothing new in ", stderrPath());
  }
  return absl::StrCat("; tail of ", stderrPath(), ":\n", lastLines(fresh, 15));
}

milliseconds HaproxyController::startupTimeout() const {
  return toMillis(options_.startup_timeout_s);
}

Status HaproxyController::validate(const std::string& config_path) {
  // The check's output goes to an unlinked file: nothing to drain while it runs, nothing left.
  std::string name = (std::filesystem::path(options_.log_dir) / "haproxy.check.XXXXXX").string();
  Fd out(::mkostemp(name.data(), O_CLOEXEC));
  if (out.get() < 0) {
    return errnoStatus(absl::StrCat(name, ": cannot create"), errno);
  }
  ::unlink(name.c_str());

  StatusOr<pid_t> pid = spawn({options_.binary, "-c", "-f", config_path}, out.get(), out.get());
  if (!pid.ok()) {
    return pid.status();
  }
  std::optional<int> status = waitReap(*pid, startupTimeout());
  if (!status.has_value()) {
    ::kill(*pid, SIGKILL);
    waitReap(*pid, milliseconds(5000));
    return absl::DeadlineExceededError(absl::StrCat(
        "haproxy -c -f ", config_path, " did not finish within ", options_.startup_timeout_s, "s"));
  }
  if (WIFEXITED(*status) && WEXITSTATUS(*status) == 0) {
    return absl::OkStatus();
  }

  const std::string output = readFrom(out.get(), 0);
  std::vector<std::string> alerts = alertLines(output);
  const std::string details = alerts.empty() ? lastLines(output, 10) : absl::StrJoin(alerts, "\n");
  return absl::InvalidArgumentError(absl::StrCat("haproxy -c rejected ", config_path, " (",
                                                 describeExit(*status), "):\n", details));
}

Status HaproxyController::start() {
  if (masterAlive()) {
    return absl::FailedPreconditionError(
        absl::StrCat("HAProxy is already running (master pid ", master_pid_, ")"));
  }
  killStrayWorkers();
  if (Status valid = validate(options_.config_path); !valid.ok()) {
    return valid;
  }
  const int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC;
  Fd out(::open(stdoutPath().c_str(), flags, 0644));
  if (out.get() < 0) {
    return errnoStatus(absl::StrCat(stdoutPath(), ": cannot open"), errno);
  }
  Fd err(::open(stderrPath().c_str(), flags, 0644));
  if (err.get() < 0) {
    return errnoStatus(absl::StrCat(stderrPath(), ": cannot open"), errno);
  }
  const off_t stderr_offset = stderrSize();
  // `-S <path>,mode,600`: bind options follow the path, comma-separated (checked on 2.6 and
  // 2.8: the socket is created srw-------, instead of umask's srwxr-xr-x).
  StatusOr<pid_t> pid =
      spawn({options_.binary, "-W", "-S", absl::StrCat(options_.master_socket_path, ",mode,600"),
             "-f", options_.config_path},
            out.get(), err.get());
  if (!pid.ok()) {
    return pid.status();
  }
  master_pid_ = *pid;
  master_exit_.clear();

  StatusOr<int> worker =
      waitForTakeover(Clock::now() + startupTimeout(), std::nullopt, stderr_offset, "start");
  if (!worker.ok()) {
    stop(0);
    return worker.status();
  }
  return absl::OkStatus();
}

StatusOr<ReloadOutcome> HaproxyController::reload() {
  if (!masterAlive()) {
    return absl::FailedPreconditionError(
        absl::StrCat("reload: HAProxy is not running",
                     master_exit_.empty() ? "" : absl::StrCat(" (master: ", master_exit_, ")")));
  }
  const Clock::time_point started = Clock::now();
  StatusOr<ShowProc> before = showOurProc();
  if (!before.ok()) {
    return absl::Status(before.status().code(),
                        absl::StrCat("reload: ", messageOf(before.status())));
  }
  const std::optional<int> old_worker = before->currentWorkerPid();
  if (!old_worker.has_value()) {
    return absl::UnavailableError("reload: the master lists no current worker");
  }
  const Baseline baseline{*old_worker, before->master.reloads, before->failed_reloads};
  const off_t stderr_offset = stderrSize();

  StatusOr<ReloadReply> reply = master_cli_.reload();
  if (!reply.ok()) {
    return absl::Status(reply.status().code(), absl::StrCat("reload: ", messageOf(reply.status())));
  }
  if (reply->kind == ReloadReply::Kind::kFailed) {
    // 2.7+ says so at once; its startup log holds the reasons.
    std::vector<std::string> alerts = alertLines(reply->startup_log);
    return absl::AbortedError(absl::StrCat(
        "reload failed (HAProxy answered Success=0); it kept worker ", *old_worker,
        " serving the previous config:\n",
        alerts.empty() ? lastLines(reply->startup_log, 10) : absl::StrJoin(alerts, "\n")));
  }
  StatusOr<int> worker =
      waitForTakeover(started + startupTimeout(), baseline, stderr_offset, "reload");
  if (!worker.ok()) {
    return worker.status();
  }
  return ReloadOutcome{*old_worker, *worker,
                       std::chrono::duration_cast<milliseconds>(Clock::now() - started)};
}

StatusOr<int> HaproxyController::waitForTakeover(Clock::time_point deadline,
                                                 const std::optional<Baseline>& before,
                                                 off_t stderr_offset, const std::string& what) {
  std::string last_seen = "no answer yet";
  while (true) {
    if (!masterAlive()) {
      return absl::UnavailableError(absl::StrCat(what, ": the HAProxy master exited (",
                                                 master_exit_, ")", stderrTail(stderr_offset)));
    }
    // On 2.6 the master CLI does not answer while the master re-executes itself for a
    // reload: a failed exchange here just means "not yet".
    StatusOr<ShowProc> proc = showOurProc();
    if (!proc.ok()) {
      last_seen = messageOf(proc.status());
    } else if (before.has_value() && proc->failed_reloads > before->failed_reloads) {
      std::vector<std::string> alerts = alertLines(stderrSince(stderr_offset));
      return absl::AbortedError(absl::StrCat(
          what, " failed (HAProxy's failed-reload count went from ", before->failed_reloads, " to ",
          proc->failed_reloads, "); it kept worker ", before->worker_pid,
          " serving the previous config",
          alerts.empty() ? stderrTail(stderr_offset) : ":\n" + absl::StrJoin(alerts, "\n")));
    } else {
      const std::optional<int> current = proc->currentWorkerPid();
      const bool moved_on = !before.has_value() || (proc->master.reloads > before->reloads &&
                                                    current != before->worker_pid);
      if (!current.has_value()) {
        last_seen = "the master lists no current worker";
      } else if (!moved_on) {
        last_seen = absl::StrCat("worker ", *current, " is still the current one");
      } else {
        StatusOr<ShowInfo> info = showInfo(admin_);
        if (info.ok() && info->pid == *current) {
          return *current;
        }
        last_seen = info.ok() ? absl::StrCat("the master lists worker ", *current,
                                             " but the admin socket answers from pid ", info->pid)
                              : messageOf(info.status());
      }
    }
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(what, ": no HAProxy worker took over within ", options_.startup_timeout_s,
                       "s (last seen: ", last_seen, ")", stderrTail(stderr_offset)));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

StatusOr<ShowProc> HaproxyController::showOurProc() {
  StatusOr<ShowProc> proc = master_cli_.showProc();
  if (!proc.ok()) {
    return proc;
  }
  // A master left over from an earlier run may still own the socket path until ours binds it.
  if (proc->master.pid != master_pid_) {
    return absl::FailedPreconditionError(
        absl::StrCat(options_.master_socket_path, " is answered by master pid ", proc->master.pid,
                     ", not ours (", master_pid_, ")"));
  }
  rememberWorkers(*proc);
  return proc;
}

void HaproxyController::rememberWorkers(const ShowProc& proc) {
  for (const ProcEntry& worker : proc.workers) {
    known_workers_.insert(worker.pid);
  }
  for (const ProcEntry& worker : proc.old_workers) {
    known_workers_.insert(worker.pid);
  }
}

Status HaproxyController::adopt(int master_pid) {
  if (master_pid <= 0 || processGone(master_pid)) {
    return absl::NotFoundError(absl::StrCat("no HAProxy master with pid ", master_pid));
  }
  StatusOr<std::string> cmdline =
      readWholeFile(absl::StrCat("/proc/", master_pid, "/cmdline"), "cmdline");
  if (!cmdline.ok() || cmdline->find(options_.config_path) == std::string::npos) {
    return absl::FailedPreconditionError(
        absl::StrCat("pid ", master_pid, " is not an HAProxy running ", options_.config_path));
  }
  master_pid_ = master_pid;
  adopted_ = true;
  StatusOr<ShowProc> proc = showOurProc();
  if (!proc.ok()) {
    master_pid_ = -1;
    adopted_ = false;
    return proc.status();
  }
  return absl::OkStatus();
}

bool HaproxyController::masterAlive() {
  if (master_pid_ <= 0) {
    return false;
  }
  if (adopted_) {
    if (!processGone(master_pid_)) {
      return true;
    }
    master_exit_ = "exited (adopted master, exit status unknown)";
    master_pid_ = -1;
    adopted_ = false;
    return false;
  }
  int status = 0;
  const pid_t r = ::waitpid(master_pid_, &status, WNOHANG);
  if (r == 0) {
    return true;
  }
  master_exit_ = r == master_pid_ ? describeExit(status) : "already reaped elsewhere";
  master_pid_ = -1;
  return false;
}

StatusOr<int> HaproxyController::workerPid() {
  if (!masterAlive()) {
    return absl::FailedPreconditionError("HAProxy is not running");
  }
  StatusOr<ShowProc> proc = showOurProc();
  if (!proc.ok()) {
    return proc.status();
  }
  const std::optional<int> current = proc->currentWorkerPid();
  if (!current.has_value()) {
    return absl::UnavailableError("the HAProxy master lists no current worker");
  }
  return *current;
}

StatusOr<int> HaproxyController::oldWorkerCount() {
  if (!masterAlive()) {
    return absl::FailedPreconditionError("HAProxy is not running");
  }
  StatusOr<ShowProc> proc = showOurProc();
  if (!proc.ok()) {
    return proc.status();
  }
  return static_cast<int>(proc->old_workers.size());
}

void HaproxyController::stop(double grace_s) {
  if (master_pid_ > 0 && adopted_) {
    // Not our child: signal it and watch the pid.
    const pid_t pid = master_pid_;
    auto gone_within = [&](milliseconds timeout) {
      const Clock::time_point deadline = Clock::now() + timeout;
      while (!processGone(pid)) {
        if (Clock::now() >= deadline) {
          return false;
        }
        std::this_thread::sleep_for(milliseconds(5));
      }
      return true;
    };
    bool stopped = processGone(pid);
    if (!stopped && grace_s > 0) {
      ::kill(pid, SIGUSR1);
      stopped = gone_within(toMillis(grace_s));
    }
    if (!stopped) {
      ::kill(pid, SIGTERM);
      stopped = gone_within(milliseconds(2000));
    }
    if (!stopped) {
      ::kill(pid, SIGKILL);
    }
    master_pid_ = -1;
    adopted_ = false;
  }
  if (master_pid_ > 0) {
    const pid_t pid = master_pid_;
    bool stopped = childState(pid) != ChildState::kRunning;
    if (!stopped && grace_s > 0) {
      // In master-worker mode SIGUSR1 makes the master soft-stop its workers and exit once the
      // last one is gone (checked on 2.6 and 2.8: "All workers exited. Exiting... (0)").
      ::kill(pid, SIGUSR1);
      stopped = waitNotRunning(pid, toMillis(grace_s));
    }
    if (!stopped) {
      ::kill(pid, SIGTERM);  // hard stop: the master terminates its workers, then itself
      stopped = waitNotRunning(pid, milliseconds(2000));
    }
    if (childState(pid) != ChildState::kNotOurs) {
      // Unreaped, the master's pid is still our process group's id, so this reaches only what
      // we started: workers that outlive a master killed outright.
      ::killpg(pid, SIGKILL);
      int status = 0;
      if (::waitpid(pid, &status, 0) == pid) {
        master_exit_ = describeExit(status);
      }
    }
    master_pid_ = -1;
  }
  killStrayWorkers();
}

Status HaproxyController::restart() {
  if (masterAlive()) {
    return absl::FailedPreconditionError(
        absl::StrCat("restart: the HAProxy master (pid ", master_pid_, ") is still running"));
  }
  return start();
}

void HaproxyController::killStrayWorkers() {
  std::vector<int> killed;
  for (int pid : known_workers_) {
    if (!processGone(pid) && runsConfig(pid, options_.config_path)) {
      ::kill(pid, SIGKILL);
      killed.push_back(pid);
    }
  }
  known_workers_.clear();
  const Clock::time_point deadline = Clock::now() + milliseconds(2000);
  for (int pid : killed) {
    while (!processGone(pid) && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(5));
    }
  }
}

}  // namespace serve::manager
