// The Manager's change queue and control loop. Callers record a change under mu_ and wait for
// its generation to be applied; the loop thread builds the desired table, lets the Reconciler
// decide, and carries the step out. Starting and stopping are in manager_start.cc.
#include "haproxy-manager/reconcile/manager.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/crash_point.h"
#include "common/file_util.h"
#include "haproxy-manager/reconcile/adoption.h"
#include "haproxy-manager/reconcile/applier.h"
#include "haproxy-manager/reconcile/global_settings.h"
#include "haproxy-manager/reconcile/registrations.h"
#include "haproxy-manager/reconcile/status_view.h"
#include "spdlog/spdlog.h"

namespace serve::manager {
namespace {

double msBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

}  // namespace

StatusOr<ApplyOutcome> Manager::change(const std::function<Status()>& mutate) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_ || !started_) {
    return absl::UnavailableError("the manager is not running");
  }
  if (Status st = mutate(); !st.ok()) {
    return st;
  }
  const std::uint64_t generation = ++generation_;
  const Clock::time_point changed_at = clock_.now();
  change_times_[generation] = changed_at;
  changed_cv_.notify_one();
  const auto timeout = std::chrono::duration<double>(options_.env.startup_timeout_s +
                                                     options_.env.broadcast_coalesce_s + 10);
  if (!applied_cv_.wait_for(lock, timeout,
                            [&] { return applied_generation_ >= generation || stopping_; })) {
    return absl::DeadlineExceededError("HAProxy did not apply the change in time");
  }
  auto it = results_.lower_bound(generation);
  if (it == results_.end()) {
    return absl::UnavailableError("the manager stopped before applying the change");
  }
  if (!it->second.status.ok()) {
    return it->second.status;
  }
  ApplyOutcome outcome = it->second.outcome;
  outcome.latency_ms = msBetween(changed_at, clock_.now());
  return outcome;
}

StatusOr<ApplyOutcome> Manager::registerReplica(const ReplicaRegistration& replica) {
  return change([&]() -> Status {
    if (Status st = validateRegistration(*config_, replicas_, replica); !st.ok()) {
      return st;
    }
    replicas_[replica.replica_id] = replica;
    metrics_.replicas.set(static_cast<double>(replicas_.size()));
    return absl::OkStatus();
  });
}

StatusOr<ApplyOutcome> Manager::deregisterReplica(const std::string& replica_id) {
  return change([&]() -> Status {
    if (replicas_.erase(replica_id) == 0) {
      return absl::NotFoundError(absl::StrCat("no replica '", replica_id, "' is registered"));
    }
    metrics_.replicas.set(static_cast<double>(replicas_.size()));
    return absl::OkStatus();
  });
}

StatusOr<ApplyOutcome> Manager::deploy(ServeConfig config) {
  return change([&]() -> Status {
    config_ = std::make_shared<const ServeConfig>(std::move(config));
    return absl::OkStatus();
  });
}

StatusOr<ApplyOutcome> Manager::setDraining(bool draining) {
  return change([&]() -> Status {
    draining_ = draining;
    metrics_.draining.set(draining ? 1 : 0);
    return absl::OkStatus();
  });
}

void Manager::loop() {
  std::uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    auto wait = std::chrono::duration<double>(options_.env.control_loop_interval_s);
    if (const std::optional<Clock::time_point> due = reconciler_.reloadDue(); due.has_value()) {
      wait = std::min(wait, std::chrono::duration<double>(*due - clock_.now()));
    }
    if (wait.count() > 0) {
      changed_cv_.wait_for(lock, wait, [&] { return stopping_ || generation_ != seen; });
    }
    if (stopping_) {
      break;
    }
    seen = generation_;
    lock.unlock();
    iterate();
    lock.lock();
  }
}

DesiredInputs Manager::snapshotInputs(std::uint64_t& generation,
                                      std::shared_ptr<const ServeConfig>& config) {
  DesiredInputs inputs;
  std::lock_guard<std::mutex> lock(mu_);
  config = config_;
  for (const auto& [id, replica] : replicas_) {
    inputs.replicas.push_back(replica);
  }
  inputs.draining = draining_;
  generation = generation_;
  inputs.config = config.get();
  inputs.global = globalSettings(options_.env, *config);
  inputs.min_server_slots = options_.env.min_server_slots;
  return inputs;
}

void Manager::iterate() {
  restartIfDead();
  checkReplicaProcesses();
  std::uint64_t generation = 0;
  std::shared_ptr<const ServeConfig> config;
  DesiredInputs inputs = snapshotInputs(generation, config);
  inputs.idle_draining_slots =
      idleDrainingSlots(*admin_, reconciler_.running(), reconciler_.drainStarted(), clock_.now());
  const RoutingTable desired = buildDesired(inputs, reconciler_.running());
  carryOut(reconciler_.next(desired, generation, clock_.now()), generation, config);
}

void Manager::carryOut(Step step, std::uint64_t generation,
                       const std::shared_ptr<const ServeConfig>& config) {
  if (step.action == StepAction::kNone) {
    publish(generation, Result{absl::OkStatus(), ApplyOutcome{"none"}});
    if (step.check_drift) {
      repairDrift(*admin_, reconciler_.running(), metrics_);
    }
    return;
  }
  if (step.action == StepAction::kRuntime) {
    Status st = applyRuntimePlan(*admin_, step.plan.commands, metrics_);
    if (st.ok()) {
      crashPoint("manager.runtime_applied");  // HAProxy changed; nothing recorded yet
      reconciler_.runtimeApplied(step.desired, clock_.now());
      files_.follow(reconciler_.running()).IgnoreError();  // so a restart reproduces it
      updateSlotMetrics(reconciler_.running(), metrics_);
      publish(generation,
              Result{absl::OkStatus(), ApplyOutcome{"runtime", {}, step.plan.commands}});
      return;
    }
    spdlog::warn("haproxy-manager: runtime commands failed, reloading instead: {}", messageOf(st));
    step = reconciler_.runtimeFailed(step, messageOf(st), generation, clock_.now());
  }
  if (step.action != StepAction::kReload) {
    return;  // kWait: the loop comes back when the window closes; kSuppressed: on a change
  }
  StatusOr<ReloadOutcome> reloaded =
      reloadTo(step.desired, step.plan.reload_reasons, reloadParts());
  afterReload(step, reloaded.status(), generation, config);
}

void Manager::afterReload(const Step& step, const Status& st, std::uint64_t generation,
                          const std::shared_ptr<const ServeConfig>& config) {
  if (!st.ok()) {
    reconciler_.reloadFailed(step.desired, generation);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (config_ == config && config != applied_config_) {
        config_ = applied_config_;  // a refused deploy leaves the previous config in force
      }
    }
    publish(generation, Result{st, {}});
    return;
  }
  crashPoint("manager.reloaded");  // HAProxy runs the new files; nothing recorded yet
  reconciler_.reloaded(step.desired);
  {
    std::lock_guard<std::mutex> lock(mu_);
    applied_config_ = config;
  }
  updateSlotMetrics(reconciler_.running(), metrics_);
  repairDrift(*admin_, reconciler_.running(), metrics_);  // the state file may carry old states
  ApplyOutcome outcome{"reload"};
  for (const ReloadReason& reason : step.plan.reload_reasons) {
    outcome.reasons.push_back(reason.text);
  }
  publish(generation, Result{absl::OkStatus(), outcome});
}

void Manager::checkReplicaProcesses() {
  std::lock_guard<std::mutex> lock(mu_);
  bool lost = false;
  for (auto it = replicas_.begin(); it != replicas_.end();) {
    const int pid = it->second.pid;
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) {
      spdlog::warn("haproxy-manager: replica {} (pid {}) is gone; draining its slot", it->first,
                   pid);
      metrics_.replicas_lost.inc();
      it = replicas_.erase(it);
      lost = true;
    } else {
      ++it;
    }
  }
  if (lost) {
    metrics_.replicas.set(static_cast<double>(replicas_.size()));
    ++generation_;
  }
}

void Manager::restartIfDead() {
  if (haproxy_->masterAlive()) {
    // `show proc` goes through the master; once a second is plenty for a gauge, and keeps the
    // master CLI out of the path of changes.
    const Clock::time_point now = clock_.now();
    if (now - last_proc_check_ >= std::chrono::seconds(1)) {
      last_proc_check_ = now;
      if (StatusOr<int> old = haproxy_->oldWorkerCount(); old.ok()) {
        metrics_.old_workers.set(*old);
      }
    }
    return;
  }
  reconciler_.restarted();
  if (restartFrom(reconciler_.running(), reloadParts()).ok()) {
    repairDrift(*admin_, reconciler_.running(), metrics_);
  }
}

void Manager::publish(std::uint64_t generation, Result result) {
  std::lock_guard<std::mutex> lock(mu_);
  running_snapshot_ = reconciler_.running();
  saveState();
  if (generation <= applied_generation_ && result.status.ok()) {
    return;
  }
  const Clock::time_point now = clock_.now();
  for (auto it = change_times_.begin(); it != change_times_.end() && it->first <= generation;) {
    metrics_.propagation_ms.observe(msBetween(it->second, now));
    it = change_times_.erase(it);
  }
  results_[generation] = std::move(result);
  applied_generation_ = std::max(applied_generation_, generation);
  while (results_.size() > 64) {
    results_.erase(results_.begin());
  }
  applied_cv_.notify_all();
}

// Under mu_.
void Manager::saveState() {
  ManagerState state{haproxy_->masterPid(), {}};
  for (const auto& [id, reg] : replicas_) {
    state.replicas.push_back(reg);
  }
  const std::string text = managerStateJson(state);
  if (text == saved_state_) {
    return;
  }
  const std::string path = statePath(running_snapshot_.global, kManagerStateFile);
  if (writePrivateFileAtomically(path, text + "\n", "manager state").ok()) {
    saved_state_ = text;
  }
}

std::vector<ReplicaRegistration> Manager::registrations() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ReplicaRegistration> out;
  for (const auto& [id, reg] : replicas_) {
    out.push_back(reg);
  }
  return out;
}

bool Manager::slotReleased(const ReplicaRegistration& replica) const {
  std::lock_guard<std::mutex> lock(mu_);
  return replicas_.count(replica.replica_id) == 0 && !tableHolds(running_snapshot_, replica);
}

nlohmann::json Manager::status() const {
  // Requests in progress on the HTTP frontend; -1 when HAProxy does not answer.
  long long in_flight = -1;
  if (StatusOr<std::vector<StatRow>> rows = showStat(*admin_); rows.ok()) {
    for (const StatRow& row : *rows) {
      if (row.proxy == "http" && row.kind == StatKind::kFrontend) {
        in_flight = row.scur;
      }
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  return {{"haproxy", {{"master_pid", haproxy_->masterPid()}}},
          {"config", config_->source},
          {"draining", draining_},
          {"in_flight", in_flight},
          {"generation", generation_},
          {"applied_generation", applied_generation_},
          {"applications", applicationsJson(running_snapshot_)},
          {"replicas", registrationsJson(replicas_)}};
}

nlohmann::json Manager::routes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return nlohmann::json::parse(routesJson(running_snapshot_));
}

std::string Manager::metricsText() const {
  // Disjoint family names: the concatenation is one valid exposition.
  return metrics_.serialize() + ingress_metrics_.serialize();
}

}  // namespace serve::manager
