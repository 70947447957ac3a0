#pragma once

// HaproxyController owns one HAProxy in master-worker mode: it validates configs with
// `haproxy -c`, starts the master (`-W -S <master.sock>`), reloads through the master CLI and
// confirms that a new worker took over, notices a dead master, and stops everything it
// started. HAProxy's stdout and stderr go to files in the log directory, never to a pipe (a
// full, unread stderr pipe blocks HAProxy, admin socket included: Ray PRs #63308/#63621).
//
// Not thread-safe: one owner (the reconcile loop) calls it. Every wait is a poll of HAProxy's
// own sockets against a deadline of `startup_timeout_s`.
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "common/env_settings.h"
#include "common/status.h"
#include "haproxy-manager/haproxy/master_cli.h"
#include "haproxy-manager/haproxy/process_control.h"
#include "haproxy-manager/haproxy/runtime_api.h"

namespace serve::manager {

struct HaproxyOptions {
  std::string binary;              // empty: resolveBinary("", env) picks one
  std::string config_path;         // given to -f as is; also how stray workers are recognised
  std::string admin_socket_path;   // the config's `stats socket` (level admin)
  std::string master_socket_path;  // empty: masterSocketPathFor(admin_socket_path)
  std::string log_dir;             // haproxy.stdout.log and haproxy.stderr.log, appended
  double startup_timeout_s = 30;   // RAY_SERVE_HAPROXY_STARTUP_TIMEOUT_S: start, reload, -c
  double command_timeout_s = 5;    // one admin-socket exchange
};

// "master.sock" in the directory of the admin socket.
std::string masterSocketPathFor(const std::string& admin_socket_path);

class HaproxyController final : public ProcessControl {
 public:
  // `configured` (ManagerEnv::haproxy_binary) or else RAY_SERVE_HAPROXY_BINARY_PATH from `env`:
  // it must be an executable file (the error names the variable). Otherwise `haproxy` on
  // env's PATH, then in /usr/local/sbin, /usr/sbin and /sbin, where Debian installs it but
  // which a non-root PATH often lacks. Not found: NotFound saying how to install it.
  static StatusOr<std::string> resolveBinary(const std::string& configured, const EnvLookup& env);

  // Resolves the binary and creates the log directory; starts nothing.
  static StatusOr<std::unique_ptr<HaproxyController>> create(HaproxyOptions options,
                                                             const EnvLookup& env);

  ~HaproxyController();  // stop(0)
  HaproxyController(const HaproxyController&) = delete;
  HaproxyController& operator=(const HaproxyController&) = delete;

  // `<binary> -c -f <config_path>`. InvalidArgument carrying HAProxy's "[ALERT]" lines
  // (see alertLines) when the config is rejected.
  Status validate(const std::string& config_path) override;

  // Validates the config, spawns the master in its own process group and waits until
  // `show proc` lists a worker and the admin socket's `show info` answers with that worker's
  // pid (the socket path may still be answered by an older process). On failure everything
  // spawned is stopped and the error carries the tail of HAProxy's stderr.
  // FailedPrecondition when a master is already running.
  Status start() override;

  // Sends `reload` on the master CLI and waits until a new worker is current, answers on the
  // admin socket, and the master's failed-reload count did not rise. A rejected config is
  // Aborted, with HAProxy's ALERT lines: the master then keeps the old worker serving the old
  // config. DeadlineExceeded when no new worker took over in time.
  StatusOr<ReloadOutcome> reload() override;

  // Takes over a master started by an earlier manager that died: `master_pid` must be a live
  // HAProxy whose command line holds our config path and which answers on our master socket.
  // Afterwards the controller treats it as its own (reload, stop), watching it by pid since it
  // is not our child.
  Status adopt(int master_pid) override;

  // Whether the master we started is still running; reaps it when it is not.
  bool masterAlive() override;
  // The running master's pid; -1 when none runs (never started, stopped, or seen dead).
  int masterPid() const override { return master_pid_; }
  // The current worker according to the master.
  StatusOr<int> workerPid();
  // Workers of earlier generations still finishing their connections.
  StatusOr<int> oldWorkerCount() override;

  // Soft stop (SIGUSR1 to the master: listeners close, workers finish their connections, the
  // master exits after the last one), then after `grace_s` SIGTERM (hard stop), then SIGKILL to
  // the process group. Then every worker pid seen in `show proc` that is still alive and whose
  // /proc/<pid>/cmdline still holds our config path (a recycled pid is left alone) is killed.
  // Afterwards no HAProxy process we started remains. grace_s <= 0 skips the soft stop.
  void stop(double grace_s) override;

  // After the master died: kills its leftover workers and starts again with the same config.
  // FailedPrecondition while the master is alive.
  Status restart() override;

  const HaproxyOptions& options() const { return options_; }
  // The runtime API of the current worker (the admin socket).
  AdminSocketClient& admin() { return admin_; }
  MasterCli& masterCli() { return master_cli_; }

 private:
  explicit HaproxyController(HaproxyOptions options);

  using Clock = std::chrono::steady_clock;

  // What the master reported before a reload; start() passes nullopt.
  struct Baseline {
    int worker_pid = 0;
    int reloads = 0;
    int failed_reloads = 0;
  };
  StatusOr<int> waitForTakeover(Clock::time_point deadline, const std::optional<Baseline>& before,
                                off_t stderr_offset, const std::string& what);
  StatusOr<ShowProc> showOurProc();  // `show proc`, checked to come from our master
  void rememberWorkers(const ShowProc& proc);
  void killStrayWorkers();
  std::string stderrPath() const;
  std::string stdoutPath() const;
  off_t stderrSize() const;
  std::string stderrSince(off_t since) const;  // what HAProxy wrote to stderr after `since`
  std::string stderrTail(off_t since) const;
  std::chrono::milliseconds startupTimeout() const;

  HaproxyOptions options_;
  AdminSocketClient admin_;
  MasterCli master_cli_;
  pid_t master_pid_ = -1;
  bool adopted_ = false;         // master_pid_ is not our child (see adopt())
  std::string master_exit_;      // how the last master ended, for error messages
  std::set<int> known_workers_;  // every worker pid `show proc` listed, until seen gone
};

}  // namespace serve::manager
