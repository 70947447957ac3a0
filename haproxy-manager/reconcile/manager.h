#pragma once

// The reconciler: owns one HAProxy and keeps it equal to the routing table built from the serve
// config, the registered replicas and the node's drain flag.
//
// Threads: every change (registration, deploy, drain) is recorded under mu_ and handed to the
// control-loop thread, which alone talks to HAProxy: it builds the desired table, diffs it with
// what HAProxy runs, and sends runtime commands or (after the coalescing window) performs one
// validated reload. Callers wait until the loop has applied their change and get its outcome, so
// "register returned" means "HAProxy routes to it". Between changes the loop samples HAProxy to
// free drained slots, notices dead replicas and HAProxy crashes, and repairs drift.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/serve_config.h"
#include "common/status.h"
#include "haproxy-manager/app/manager_env.h"
#include "haproxy-manager/diff/differ.h"
#include "haproxy-manager/haproxy/haproxy_process.h"
#include "haproxy-manager/ingress/ingress_log_receiver.h"
#include "haproxy-manager/ingress/ingress_metrics.h"
#include "haproxy-manager/metrics/manager_metrics.h"
#include "haproxy-manager/model/apply_outcome.h"
#include "haproxy-manager/model/desired_state.h"
#include "haproxy-manager/render/renderer.h"
#include "nlohmann/json.hpp"

namespace serve::manager {

// Beside haproxy.cfg: what the next manager needs to adopt this one's HAProxy and replicas.
inline constexpr char kManagerStateFile[] = "manager-state.json";

struct ManagerOptions {
  ManagerEnv env;
  std::string template_dir;  // resolved: env.template_dir or the built-in templates/
  // Test hook: sees (and may change) every candidate haproxy.cfg before `haproxy -c` checks it.
  std::function<void(std::string& config)> candidate_hook;
};

class Manager {
 public:
  static StatusOr<std::unique_ptr<Manager>> create(ManagerOptions options, ServeConfig config);
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
  // The first step of a node stop, before any replica leaves its slot: HAProxy's HTTP and gRPC
  // frontends stop accepting connections, then this waits until no request is queued or in
  // progress on any application backend, for at most the longest graceful_shutdown_timeout_s of
  // the config. So every request HAProxy accepted, queued ones included, is answered by a replica
  // still in service. Returns the requests still queued or in progress when it gave up.
  int64_t quiesce();

  StatusOr<ApplyOutcome> registerReplica(const ReplicaRegistration& replica);
  StatusOr<ApplyOutcome> deregisterReplica(const std::string& replica_id);
  // Applies a new config. If the resulting haproxy.cfg is refused by `haproxy -c` (or the reload
  // fails), the previous config stays in force and the error carries HAProxy's messages.
  StatusOr<ApplyOutcome> deploy(ServeConfig config);
  StatusOr<ApplyOutcome> setDraining(bool draining);

  // True once no slot (active or draining) holds this replica: HAProxy sends it nothing more.
  bool slotReleased(const std::string& replica_id) const;

  // The supervisor reports a crashed replica it restarts (serve_replica_restarts_total).
  void recordReplicaRestart() { metrics_.replica_restarts.inc(); }

  nlohmann::json status() const;
  nlohmann::json routes() const;
  std::string metricsText() const;
  const ManagerEnv& env() const { return options_.env; }

 private:
  Manager(ManagerOptions options, ServeConfig config);

  struct Inputs {  // a consistent snapshot of what the loop must apply
    std::shared_ptr<const ServeConfig> config;
    std::vector<ReplicaRegistration> replicas;
    bool draining = false;
    std::uint64_t generation = 0;
  };
  struct Result {
    Status status;
    ApplyOutcome outcome;
  };

  // Records a change and waits for the loop to apply it.
  StatusOr<ApplyOutcome> change(const std::function<Status()>& mutate);
  void loop();
  void iterate();
  Status reload(const RoutingTable& desired, const std::vector<ReloadReason>& reasons);
  Status applyRuntime(const std::vector<std::string>& commands);
  Status writeFiles(const RenderedConfig& rendered, const std::string& config_path);
  StatusOr<Templates> loadTemplates() const;
  std::set<SlotRef> idleDrainingSlots();
  void checkReplicaProcesses();
  void repairDrift();
  void restartIfDead();
  void publish(std::uint64_t generation, Result result);
  void updateSlotMetrics();
  StatusOr<bool> tryAdopt();  // true when an earlier manager's HAProxy was taken over
  void saveState();           // manager-state.json beside haproxy.cfg, when it changed

  const ManagerOptions options_;
  ManagerMetrics metrics_;
  IngressMetrics ingress_metrics_;  // from HAProxy's per-request log lines
  std::unique_ptr<IngressLogReceiver> ingress_receiver_;
  std::unique_ptr<HaproxyController> haproxy_;

  mutable std::mutex mu_;  // guards the inputs and results below
  std::condition_variable changed_cv_;
  std::condition_variable applied_cv_;
  std::shared_ptr<const ServeConfig> config_;
  std::shared_ptr<const ServeConfig> applied_config_;  // last config HAProxy accepted
  std::map<std::string, ReplicaRegistration> replicas_;
  bool draining_ = false;
  std::uint64_t generation_ = 0;
  std::map<std::uint64_t, std::chrono::steady_clock::time_point> change_times_;
  std::uint64_t applied_generation_ = 0;
  std::map<std::uint64_t, Result> results_;  // recent outcomes by generation
  bool stopping_ = false;
  RoutingTable running_snapshot_;  // copy of running_ for status(), under mu_

  // Loop-thread state (no lock: only the loop touches it after start()).
  RoutingTable running_;
  RenderedConfig last_good_;
  std::optional<std::chrono::steady_clock::time_point> reload_pending_since_;
  std::optional<RoutingTable> failed_desired_;  // do not retry an identical failed reload
  std::uint64_t failed_generation_ = 0;         // ... until a new change arrives
  std::map<SlotRef, std::chrono::steady_clock::time_point> drain_started_;
  std::uint64_t reloads_ = 0;
  std::chrono::steady_clock::time_point last_proc_check_{};
  std::chrono::steady_clock::time_point last_drift_check_{};
  static constexpr std::chrono::seconds kDriftCheckPeriod{1};
  std::thread loop_thread_;
  bool started_ = false;
  bool adopted_ = false;
  std::string saved_state_;  // last content written by saveState()
};

}  // namespace serve::manager
