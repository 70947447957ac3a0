#pragma once

// The manager: owns one HAProxy and keeps it equal to the routing table built from the serve
// config, the registered replicas and the node's drain flag.
//
// Threads: every change (registration, deploy, drain) is recorded under mu_ and handed to the
// control-loop thread, which alone talks to HAProxy. Callers wait until the loop has applied
// their change and get its outcome, so "register returned" means "HAProxy routes to it".
//
// The loop is thin: the Reconciler (reconciler.h) decides each step from the desired and the
// running table; the applier (applier.h) carries runtime steps out over the RuntimeApi;
// reload.h reloads or restarts the ProcessControl from ConfigFiles; adoption.h rebuilds an
// earlier manager's state. Between changes the loop frees drained slots, notices dead replicas
// and a dead HAProxy, and repairs drift.
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/serve_config.h"
#include "common/status.h"
#include "haproxy-manager/haproxy/process_control.h"
#include "haproxy-manager/haproxy/runtime_api.h"
#include "haproxy-manager/ingress/ingress_log_receiver.h"
#include "haproxy-manager/ingress/ingress_metrics.h"
#include "haproxy-manager/metrics/manager_metrics.h"
#include "haproxy-manager/model/apply_outcome.h"
#include "haproxy-manager/model/desired_state.h"
#include "haproxy-manager/model/manager_env.h"
#include "haproxy-manager/reconcile/adoption.h"
#include "haproxy-manager/reconcile/config_files.h"
#include "haproxy-manager/reconcile/reconciler.h"
#include "haproxy-manager/reconcile/reload.h"
#include "nlohmann/json.hpp"

namespace serve::manager {

struct ManagerOptions {
  ManagerEnv env;
  std::string template_dir;  // resolved: env.template_dir or the built-in templates/
};

class Manager {
 public:
  // With the real HAProxy controller and admin socket.
  static StatusOr<std::unique_ptr<Manager>> create(ManagerOptions options, ServeConfig config);
  // With the given seams (tests).
  Manager(ManagerOptions options, ServeConfig config, std::unique_ptr<ProcessControl> haproxy,
          std::unique_ptr<RuntimeApi> admin, const Clock& clock = steadyClock());
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Renders the initial config, starts HAProxy and the control loop. If an HAProxy already
  // answers on the admin socket and the state file of an earlier manager names it (a manager
  // that was killed), adopts it and its registrations instead: traffic never stops. Any other
  // HAProxy on the socket is an error.
  Status start();
  bool adopted() const { return adopted_; }
  // Stops the loop and HAProxy (soft stop, bounded by `grace_s`). Idempotent.
  void stop(double grace_s = 10);
  // The first step of a node stop, before any replica leaves its slot: HAProxy's frontends stop
  // accepting, then this waits until no request is queued or in progress on any application
  // backend, for at most the longest graceful_shutdown_timeout_s of the config. Returns the
  // requests still queued or in progress when it gave up.
  int64_t quiesce();

  StatusOr<ApplyOutcome> registerReplica(const ReplicaRegistration& replica);
  StatusOr<ApplyOutcome> deregisterReplica(const std::string& replica_id);
  // Applies a new config. If the resulting haproxy.cfg is refused by `haproxy -c` (or the reload
  // fails), the previous config stays in force and the error carries HAProxy's messages.
  StatusOr<ApplyOutcome> deploy(ServeConfig config);
  StatusOr<ApplyOutcome> setDraining(bool draining);

  // True once no slot (active or draining) holds this replica, by its id or by its HTTP
  // endpoint (a slot an earlier manager filled without recording whose it was): HAProxy sends
  // it nothing more.
  bool slotReleased(const ReplicaRegistration& replica) const;
  // The replicas registered now (adopted ones included).
  std::vector<ReplicaRegistration> registrations() const;
  // The supervisor reports a crashed replica it restarts (serve_replica_restarts_total).
  void recordReplicaRestart() { metrics_.replica_restarts.inc(); }

  nlohmann::json status() const;
  nlohmann::json routes() const;
  std::string metricsText() const;
  const ManagerEnv& env() const { return options_.env; }

 private:
  struct Result {
    Status status;
    ApplyOutcome outcome;
  };

  Status startFresh();
  StatusOr<bool> tryAdopt();  // true when an earlier manager's HAProxy was taken over
  // Records a change and waits for the loop to apply it.
  StatusOr<ApplyOutcome> change(const std::function<Status()>& mutate);
  void loop();
  void iterate();
  DesiredInputs snapshotInputs(std::uint64_t& generation,
                               std::shared_ptr<const ServeConfig>& config);
  void carryOut(Step step, std::uint64_t generation,
                const std::shared_ptr<const ServeConfig>& config);
  void afterReload(const Step& step, const Status& st, std::uint64_t generation,
                   const std::shared_ptr<const ServeConfig>& config);
  ReloadParts reloadParts();
  void checkReplicaProcesses();
  void restartIfDead();
  void publish(std::uint64_t generation, Result result);
  void saveState();  // manager-state.json beside haproxy.cfg, when it changed (under mu_)

  const ManagerOptions options_;
  const Clock& clock_;
  ManagerMetrics metrics_;
  IngressMetrics ingress_metrics_;  // from HAProxy's per-request log lines
  std::unique_ptr<IngressLogReceiver> ingress_receiver_;
  std::unique_ptr<ProcessControl> haproxy_;
  std::unique_ptr<RuntimeApi> admin_;

  mutable std::mutex mu_;  // guards the inputs and results below
  std::condition_variable changed_cv_;
  std::condition_variable applied_cv_;
  std::shared_ptr<const ServeConfig> config_;
  std::shared_ptr<const ServeConfig> applied_config_;  // last config HAProxy accepted
  std::map<std::string, ReplicaRegistration> replicas_;
  bool draining_ = false;
  std::uint64_t generation_ = 0;
  std::map<std::uint64_t, Clock::time_point> change_times_;
  std::uint64_t applied_generation_ = 0;
  std::map<std::uint64_t, Result> results_;  // recent outcomes by generation
  bool stopping_ = false;
  RoutingTable running_snapshot_;  // the reconciler's running table, for status(), under mu_

  // Loop-thread state (no lock: only the loop touches it after start()).
  Reconciler reconciler_;
  ConfigFiles files_;
  Clock::time_point last_proc_check_{};
  std::thread loop_thread_;
  bool started_ = false;
  bool adopted_ = false;
  std::string saved_state_;  // last content written by saveState()
};

}  // namespace serve::manager
