#pragma once

// The HAProxy process as the manager's control loop drives it: validate a candidate, start,
// reload, adopt a running master, notice and restart a dead one, stop. HaproxyController
// (haproxy_process.h) is the implementation; the reconciler's unit tests use a fake that
// refuses candidates, fails reloads or dies on cue.
#include <chrono>
#include <string>

#include "common/status.h"

namespace serve::manager {

struct ReloadOutcome {
  int old_worker_pid = 0;
  int new_worker_pid = 0;
  std::chrono::milliseconds duration{0};  // from `reload` sent to the new worker answering
};

class ProcessControl {
 public:
  virtual ~ProcessControl() = default;

  // `haproxy -c -f <config_path>`: InvalidArgument with HAProxy's ALERT lines when refused.
  virtual Status validate(const std::string& config_path) = 0;
  virtual Status start() = 0;
  virtual StatusOr<ReloadOutcome> reload() = 0;
  virtual Status adopt(int master_pid) = 0;
  virtual bool masterAlive() = 0;
  virtual int masterPid() const = 0;
  virtual StatusOr<int> oldWorkerCount() = 0;
  virtual void stop(double grace_s) = 0;
  // After the master died: starts again from the config file as it is now.
  virtual Status restart() = 0;
};

}  // namespace serve::manager
