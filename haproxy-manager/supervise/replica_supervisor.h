#pragma once

// Runs the node's replicas: for every application's ingress deployment, `num_replicas`
// serve-replica processes, each on ports from the configured ranges. A replica is registered
// (by the manager, into an HAProxy slot) once it printed its ready line, watched, restarted
// with exponential backoff when it dies, and stopped by draining first: deregister (slot to
// drain), wait until HAProxy shows the slot idle and frees it, SIGTERM, wait for the replica's
// own drain, SIGKILL only after graceful_shutdown_timeout_s. A changed deployment is rolled one
// replica at a time: start new, ready, into a slot, then drain an old one. A deploy that changes
// only a deployment's user_config is applied in place: each serving replica is asked over its
// control socket to run reconfigure (as Ray does); one that fails it is replaced by the rolling
// update. A serving replica that reports itself unhealthy on kUnhealthyPolls polls in a row (its
// class's check_health fails, or its watchdog saw no progress) is replaced the same way: a new
// one first, then the old one drains.
//
// Threads: one supervisor thread does all of it (tick() every 100 ms); apply() and stop() hand
// work to it under mu_.
//
// Seams: the supervisor acts only through interfaces it is given, so unit tests drive it step by
// step (runOnce()) without processes, sockets or sleeping: a ReplicaRegistry (the manager, in the
// node), a ProcessLauncher (spawn, signal, reap), a Clock (every backoff, deadline and poll
// period is measured on it) and a ReplicaControl (the replicas' control sockets). Replica stdout
// is read from a real pipe the supervisor creates, so a fake launcher "prints" a ready line by
// writing to the descriptor it was handed.
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/env_settings.h"
#include "common/process_launcher.h"
#include "common/serve_config.h"
#include "common/status.h"
#include "haproxy-manager/supervise/gpus.h"
#include "haproxy-manager/supervise/port_allocator.h"
#include "haproxy-manager/supervise/replica_control.h"
#include "haproxy-manager/supervise/replica_registry.h"

namespace serve::manager {

struct SupervisorOptions {
  std::string replica_binary;
  std::string log_dir;
  // Where replicas put their control sockets (private to the manager's user); empty: none, so
  // user_config changes restart replicas and unhealthy ones are left to HAProxy.
  std::string control_dir;
  std::chrono::milliseconds health_poll_period{1000};
  ReplicaEnv replica_env;  // port ranges and bind host
  int gpu_count = 0;
  double ready_timeout_s = 120;
  std::chrono::milliseconds port_quarantine{150000};
  double backoff_initial_s = 1;
  double backoff_max_s = 30;
  double backoff_reset_after_s = 60;  // healthy this long: the next crash starts from initial
};

class ReplicaSupervisor {
 public:
  // The defaults are the real launcher, clock and control sockets; tests pass fakes.
  ReplicaSupervisor(SupervisorOptions options, ReplicaRegistry& registry,
                    ProcessLauncher& launcher = systemProcessLauncher(),
                    const Clock& clock = steadyClock(),
                    ReplicaControl& control = socketReplicaControl());
  ~ReplicaSupervisor();  // stop()

  // The config to run, the file replicas read it from (an immutable snapshot: a replica
  // started later runs exactly this), and the folder its relative paths resolve against.
  void apply(std::shared_ptr<const ServeConfig> config, std::string config_path,
             std::string base_dir);
  // Takes over replicas an earlier supervisor left running (read from `state_file`, which
  // this one then keeps up to date), settled against the registry's registrations: serving
  // ones are served on without a restart (registered again if their registration was lost);
  // ones that were starting are stopped (their ready line went to the dead manager); leaving
  // ones finish leaving; a registered replica the file does not name is drained and stopped.
  void adopt(const std::string& state_file);
  void start();
  // Drains and stops every replica (bounded by their graceful_shutdown_timeout_s). Without
  // start(), it only marks the supervisor stopping; runOnce() then does the draining.
  void stop();
  // One pass of what the thread does every 100 ms: reap, poll, roll, restart. For tests that
  // drive the supervisor without start().
  void runOnce();

  struct ReplicaView {
    std::string id, application, deployment, state;
    int pid = 0, http_port = 0, restarts = 0;
    std::string last_error;  // why its last start failed or why it was replaced; "" if none
  };
  std::vector<ReplicaView> replicas() const;
  // Consecutive "unhealthy" answers after which a serving replica is replaced (Ray's controller
  // also waits for three failed checks).
  static constexpr int kUnhealthyPolls = 3;
  int restartsTotal() const;

 private:
  enum class State { kStarting, kServing, kDraining, kStopping, kBackoff };
  struct Replica {
    std::string id;
    std::string application;
    std::string deployment;
    std::string spec;         // fingerprint of the deployment as configured (no user_config)
    std::string user_config;  // the user_config (JSON) the replica runs with
    bool replace = false;     // failed a reconfigure or stayed unhealthy: roll it like an old one
    std::string last_error;
    std::string control_socket;         // "" for none
    std::future<Status> reconfiguring;  // a reconfigure in flight (valid() while it is)
    std::string reconfiguring_to;
    int unhealthy_polls = 0;
    Clock::time_point next_poll;
    State state = State::kStarting;
    pid_t pid = -1;
    int out_fd = -1;
    std::string out;
    int http_port = 0;
    int grpc_port = 0;
    std::vector<int> gpus;
    double gpu_amount = 0;
    double graceful_s = 20;
    int restarts = 0;         // crashes of this slot of the deployment
    bool retiring = false;    // to be removed, not restarted
    bool adopted = false;     // started by an earlier manager: not our child, watched by pid
    Clock::time_point since;  // entered the current state
    Clock::time_point next_start;
  };

  void loop();
  void tick();
  std::vector<std::unique_ptr<Replica>> parseAdoptable(const std::string& text);
  void reserveAdopted(const Replica& r);
  void settleAdopted(Replica& r, bool in_slot);
  void adoptUnrecorded(const ReplicaRegistration& reg);
  ReplicaRegistration registrationOf(const Replica& r, int http_port, int grpc_port) const;
  void stepStates();
  void reconcileDeployments();
  // Restarts of a deployment's replicas whose backoff elapsed, and control of serving ones.
  void tendDeployment(const std::string& key, const ApplicationSpec& app, const DeploymentSpec& d,
                      const std::string& fingerprint);
  // One step of a rolling update, or scaling to num_replicas.
  void convergeDeployment(const std::string& key, const ApplicationSpec& app,
                          const DeploymentSpec& d, const std::string& fingerprint);
  void addReplica(const ApplicationSpec& app, const DeploymentSpec& d,
                  const std::string& fingerprint);
  // In-place user_config changes and health polls of serving replicas.
  void controlServing(Replica& r, const DeploymentSpec& d);
  void startReconfigure(Replica& r, const DeploymentSpec& d);
  void pollHealth(Replica& r);
  bool upToDate(const Replica& r, const std::string& fingerprint) const {
    return r.spec == fingerprint && !r.replace;
  }
  void startReplica(Replica& r, const ApplicationSpec& app, const DeploymentSpec& d);
  bool takeResources(Replica& r, const DeploymentSpec& d);
  std::vector<std::string> replicaArgs(const Replica& r, const ApplicationSpec& app,
                                       const DeploymentSpec& d) const;
  void spawnReplica(Replica& r, std::vector<std::string> args, std::vector<std::string> env);
  void pollStarting(Replica& r);
  void registerReady(Replica& r, const std::string& ready_line);
  void retire(Replica& r);
  void reap();
  void onExit(Replica& r, int status);
  bool blockPortIfTaken(Replica& r);
  void scheduleRestart(Replica& r, const std::string& why);
  void releaseResources(Replica& r);
  void saveState();
  double secondsSince(Clock::time_point t) const;
  std::string logPath(const Replica& r) const;

  const SupervisorOptions options_;
  ReplicaRegistry& registry_;
  ProcessLauncher& launcher_;
  const Clock& clock_;
  ReplicaControl& control_;

  mutable std::mutex mu_;
  std::shared_ptr<const ServeConfig> config_;
  std::string config_path_;
  std::string base_dir_;
  bool stopping_ = false;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Replica>> replicas_;  // loop thread only (views under mu_)
  std::map<std::string, int> next_index_;           // per deployment key, for replica ids
  int restarts_total_ = 0;
  std::string state_file_;
  std::string saved_state_;

  PortAllocator http_ports_;
  PortAllocator grpc_ports_;
  GpuPool gpus_;
  std::thread thread_;
};

}  // namespace serve::manager
