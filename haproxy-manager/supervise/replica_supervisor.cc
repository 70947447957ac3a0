#include "haproxy-manager/supervise/replica_supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/crash_point.h"
#include "haproxy-manager/model/desired_state.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

extern char** environ;

namespace serve::manager {

namespace {

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// What a replica of this deployment reads from the config, but for user_config (applied in
// place): a change rolls its replicas.
std::string fingerprint(const ServeConfig& config, const DeploymentSpec& d) {
  const auto& m = d.model;
  const auto& p = m.python;
  const auto& b = d.batching;
  const auto& h = config.http_options;
  return absl::StrCat(
      m.kind, "|", m.name, "|", m.path, "|", m.sleep_ms, "|", d.max_ongoing_requests, "|",
      d.max_queued_requests, "|", b.max_batch_size, "|", b.batch_wait_timeout_s, "|",
      b.linger_fraction, "|", d.batching_configured, "|", d.ray_actor_options.num_cpus, "|",
      d.ray_actor_options.num_gpus, "|", d.graceful_shutdown_timeout_s, "|",
      d.health_check_period_s, "|", d.health_check_timeout_s, "|", h.request_timeout_s, "|",
      h.keep_alive_timeout_s, "|", p.import_path, "|", p.init_args_json, "|", p.init_kwargs_json,
      "|", p.working_dir, "|", p.python, "|", p.arena_mb);
}

// The replica's control socket: <control_dir>/<replica id>.sock, or a hash of the id where that
// would not fit a unix socket address (108 bytes).
std::string controlSocketPath(const std::string& dir, const std::string& id) {
  if (dir.empty()) {
    return "";
  }
  std::string path = absl::StrCat(dir, "/", id, ".sock");
  if (path.size() >= 100) {
    path = absl::StrCat(dir, "/", absl::Hex(std::hash<std::string>{}(id)), ".sock");
  }
  return path.size() < 100 ? path : "";
}

const char* stateName(int s) {
  static const char* names[] = {"starting", "serving", "draining", "stopping", "backoff"};
  return names[s];
}

// The replica's environment: ours, but for its BLAS threads and its devices.
std::vector<std::string> replicaEnvironment(double num_cpus, const std::vector<int>& gpus) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (entry.rfind("OMP_NUM_THREADS=", 0) == 0 || entry.rfind("CUDA_VISIBLE_DEVICES=", 0) == 0) {
      continue;
    }
    env.push_back(entry);
  }
  const int threads = std::max(1, static_cast<int>(std::ceil(num_cpus)));
  env.push_back(absl::StrCat("OMP_NUM_THREADS=", threads));
  if (!gpus.empty()) {
    env.push_back("CUDA_VISIBLE_DEVICES=" + cudaVisibleDevices(gpus));
  }
  return env;
}

// Appends what the (non-blocking) pipe holds now to `out`, while `out` is under `limit`.
void readAvailable(int fd, std::string& out, std::size_t limit) {
  char buf[4096];
  ssize_t n = 0;
  while (out.size() < limit && (n = ::read(fd, buf, sizeof(buf))) > 0) {
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// The error of the last {"event":"failed",...} line in a replica's stdout; "" when none.
std::string failureIn(const std::string& out) {
  std::string failure;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json event = nlohmann::json::parse(line, nullptr, false);
    if (event.is_object() && event.value("event", "") == "failed" && event.contains("error") &&
        event["error"].is_string()) {
      failure = event["error"].get<std::string>();
    }
  }
  return failure;
}

}  // namespace

ReplicaSupervisor::ReplicaSupervisor(SupervisorOptions options, ReplicaRegistry& registry,
                                     ProcessLauncher& launcher, const Clock& clock,
                                     ReplicaControl& control)
    : options_(std::move(options)),
      registry_(registry),
      launcher_(launcher),
      clock_(clock),
      control_(control),
      http_ports_("HTTP", options_.replica_env.min_http_port, options_.replica_env.max_http_port,
                  options_.port_quarantine),
      grpc_ports_("gRPC", options_.replica_env.min_grpc_port, options_.replica_env.max_grpc_port,
                  options_.port_quarantine),
      gpus_(options_.gpu_count) {}

ReplicaSupervisor::~ReplicaSupervisor() {
  stop();
  // After the thread's drain nothing is left; a supervisor driven by runOnce() (tests) may
  // still hold the pipes of replicas it never stopped.
  for (auto& r : replicas_) {
    if (r->out_fd >= 0) {
      ::close(r->out_fd);
    }
  }
}

double ReplicaSupervisor::secondsSince(Clock::time_point t) const {
  return std::chrono::duration<double>(clock_.now() - t).count();
}

std::string ReplicaSupervisor::logPath(const Replica& r) const {
  return absl::StrCat(options_.log_dir, "/replica-", r.id, ".log");
}

void ReplicaSupervisor::apply(std::shared_ptr<const ServeConfig> config, std::string config_path,
                              std::string base_dir) {
  std::lock_guard<std::mutex> lock(mu_);
  config_ = std::move(config);
  config_path_ = std::move(config_path);
  base_dir_ = std::move(base_dir);
  cv_.notify_all();
}

void ReplicaSupervisor::adopt(const std::string& state_file) {
  std::lock_guard<std::mutex> lock(mu_);
  state_file_ = state_file;
  std::vector<std::unique_ptr<Replica>> adopted;
  if (std::ifstream in(state_file); in) {
    std::stringstream text;
    text << in.rdbuf();
    // All or nothing: a damaged file (truncated by a crash, edited by hand, a field of the
    // wrong type) is reported and adopts nothing; it never throws out of the start.
    try {
      adopted = parseAdoptable(text.str());
    } catch (const std::exception& e) {
      spdlog::warn("supervisor: ignoring {}: {}", state_file, e.what());
      adopted.clear();
    }
  }
  // The earlier manager may have died between two writes: a replica registered after its last
  // state write, or a state written before its registration changed. The registrations are the
  // routing truth; each adopted replica is settled against them, and what remains is a replica
  // this supervisor has no record of.
  std::map<std::string, ReplicaRegistration> registered;
  for (ReplicaRegistration& reg : registry_.registrations()) {
    registered.emplace(reg.replica_id, std::move(reg));
  }
  for (auto& r : adopted) {
    reserveAdopted(*r);
    settleAdopted(*r, registered.erase(r->id) > 0);
    replicas_.push_back(std::move(r));
  }
  for (const auto& [id, reg] : registered) {
    adoptUnrecorded(reg);
  }
}

void ReplicaSupervisor::reserveAdopted(const Replica& r) {
  http_ports_.markInUse(r.http_port);
  if (r.grpc_port > 0) {
    grpc_ports_.markInUse(r.grpc_port);
  }
  gpus_.reserve(r.gpus, r.gpu_amount);
  const std::string key = r.application + "/" + r.deployment;
  const std::size_t dot = r.id.rfind('.');
  if (dot != std::string::npos) {
    next_index_[key] = std::max(next_index_[key], std::atoi(r.id.c_str() + dot + 1) + 1);
  }
}

// Under mu_. `state` is what the file recorded; `in_slot` whether the manager has it registered.
void ReplicaSupervisor::settleAdopted(Replica& r, bool in_slot) {
  if (r.retiring || r.state == State::kDraining || r.state == State::kStopping) {
    // It was on its way out: finish that. Its slot (if it still has one) drains first.
    r.retiring = true;
    if (r.state != State::kStopping) {
      r.state = State::kDraining;
      r.since = clock_.now();
    }
    if (in_slot) {
      registry_.deregisterReplica(r.id).IgnoreError();
    }
    spdlog::info("supervisor: adopted replica {} (pid {}) that was leaving; stopping it", r.id,
                 r.pid);
    return;
  }
  if (r.state == State::kServing || in_slot) {
    r.state = State::kServing;
    if (!in_slot) {
      // Recorded as serving, but its registration was lost with the earlier manager.
      StatusOr<ApplyOutcome> out =
          registry_.registerReplica(registrationOf(r, r.http_port, r.grpc_port));
      if (!out.ok()) {
        spdlog::error("supervisor: registering adopted replica {} failed: {}", r.id,
                      messageOf(out.status()));
        retire(r);
        return;
      }
    }
    spdlog::info("supervisor: adopted replica {} (pid {}, port {})", r.id, r.pid, r.http_port);
    return;
  }
  // Recorded as starting and not registered: the deployment starts a replacement, and this one
  // leaves. Not at once: the earlier manager may have died between putting it into an HAProxy
  // slot and recording that, so HAProxy may be sending it requests. It leaves the way a drained
  // replica does, stopped once no slot holds its endpoint (the adopted slot nobody registered
  // drains on the first reconcile). One whose ready line was never read exits by itself.
  spdlog::info(
      "supervisor: adopted replica {} (pid {}) was still starting; stopping it once no "
      "slot holds it",
      r.id, r.pid);
  r.retiring = true;
  r.state = State::kDraining;
  r.since = clock_.now();
}

// Under mu_. A registered, running replica missing from the state file: the earlier manager
// registered it after its last write. Drain and stop it like any leaving replica; the
// deployment's own count decides whether another starts.
void ReplicaSupervisor::adoptUnrecorded(const ReplicaRegistration& reg) {
  registry_.deregisterReplica(reg.replica_id).IgnoreError();
  if (reg.pid <= 0 || launcher_.commandLine(reg.pid).find("serve-replica") == std::string::npos) {
    return;  // not a process of ours (registered by hand, or gone)
  }
  auto r = std::make_unique<Replica>();
  r->id = reg.replica_id;
  r->application = reg.application;
  r->deployment = reg.deployment;
  r->pid = reg.pid;
  r->http_port = reg.http_port;
  r->grpc_port = reg.grpc_port;
  r->adopted = true;
  r->retiring = true;
  r->state = State::kDraining;
  r->since = clock_.now();
  reserveAdopted(*r);
  spdlog::info("supervisor: replica {} (pid {}) was registered but not recorded; draining it",
               r->id, r->pid);
  replicas_.push_back(std::move(r));
}

// The state file's replicas that still run; throws on anything malformed.
std::vector<std::unique_ptr<ReplicaSupervisor::Replica>> ReplicaSupervisor::parseAdoptable(
    const std::string& text) {
  const nlohmann::json state = nlohmann::json::parse(text);
  std::vector<std::unique_ptr<Replica>> out;
  for (const auto& j : state.at("replicas")) {
    const int pid = j.value("pid", 0);
    if (pid <= 0 || launcher_.commandLine(pid).find("serve-replica") == std::string::npos) {
      continue;  // gone (or the pid now belongs to something else)
    }
    auto r = std::make_unique<Replica>();
    r->id = j.at("replica_id").get<std::string>();
    r->application = j.value("application", "");
    r->deployment = j.value("deployment", "");
    r->spec = j.value("spec", "");
    r->user_config = j.value("user_config", "null");
    r->control_socket = j.value("control_socket", "");
    r->pid = pid;
    r->http_port = j.value("http_port", 0);
    r->grpc_port = j.value("grpc_port", 0);
    r->gpus = j.value("gpus", std::vector<int>{});
    r->gpu_amount = j.value("gpu_amount", 0.0);
    r->graceful_s = j.value("graceful_s", 20.0);
    if (r->id.empty() || r->http_port < 1 || r->http_port > 65535 || r->grpc_port < 0 ||
        r->grpc_port > 65535) {
      throw std::invalid_argument("replica '" + r->id + "' has no id or a port out of range");
    }
    // Files written before states were recorded hold only serving replicas.
    const std::string state = j.value("state", "serving");
    if (state == "starting") {
      r->state = State::kStarting;
    } else if (state == "serving") {
      r->state = State::kServing;
    } else if (state == "draining") {
      r->state = State::kDraining;
    } else if (state == "stopping") {
      r->state = State::kStopping;
    } else {
      throw std::invalid_argument("replica '" + r->id + "' has an unknown state '" + state + "'");
    }
    r->retiring = j.value("retiring", false);
    r->adopted = true;
    r->since = clock_.now();
    out.push_back(std::move(r));
  }
  return out;
}

// Under mu_.
void ReplicaSupervisor::saveState() {
  if (state_file_.empty()) {
    return;
  }
  nlohmann::json replicas = nlohmann::json::array();
  for (const auto& r : replicas_) {
    if (r->pid <= 0) {
      continue;
    }
    replicas.push_back({{"replica_id", r->id},
                        {"application", r->application},
                        {"deployment", r->deployment},
                        {"spec", r->spec},
                        {"user_config", r->user_config},
                        {"control_socket", r->control_socket},
                        {"pid", r->pid},
                        {"http_port", r->http_port},
                        {"grpc_port", r->grpc_port},
                        {"gpus", r->gpus},
                        {"gpu_amount", r->gpu_amount},
                        {"graceful_s", r->graceful_s},
                        {"state", stateName(static_cast<int>(r->state))},
                        {"retiring", r->retiring}});
  }
  const std::string text = nlohmann::json{{"replicas", replicas}}.dump();
  if (text == saved_state_) {
    return;
  }
  const std::string tmp = state_file_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text << "\n";
    if (!out) {
      return;
    }
  }
  if (std::rename(tmp.c_str(), state_file_.c_str()) == 0) {
    saved_state_ = text;
  }
}

void ReplicaSupervisor::start() {
  thread_ = std::thread([this] { loop(); });
}

void ReplicaSupervisor::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    tick();
    if (stopping_ && replicas_.empty()) {
      break;
    }
    // Real waiting: what each tick does is decided on clock_, so a test's clock needs no thread.
    cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
}

void ReplicaSupervisor::runOnce() {
  std::lock_guard<std::mutex> lock(mu_);
  tick();
}

void ReplicaSupervisor::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      return;
    }
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) {
    thread_.join();
  }
}

std::vector<ReplicaSupervisor::ReplicaView> ReplicaSupervisor::replicas() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ReplicaView> out;
  for (const auto& r : replicas_) {
    out.push_back({r->id, r->application, r->deployment, stateName(static_cast<int>(r->state)),
                   static_cast<int>(r->pid), r->http_port, r->restarts, r->last_error});
  }
  return out;
}

int ReplicaSupervisor::restartsTotal() const {
  std::lock_guard<std::mutex> lock(mu_);
  return restarts_total_;
}

// Runs under mu_.
void ReplicaSupervisor::tick() {
  reap();
  stepStates();
  reconcileDeployments();
  // Retired replicas that never ran (backoff) leave at once.
  std::erase_if(replicas_, [](const std::unique_ptr<Replica>& r) {
    return r->retiring && r->state == State::kBackoff;
  });
  saveState();
}

// Moves replicas along the states that need no config: ready lines, drains, stop deadlines.
void ReplicaSupervisor::stepStates() {
  for (auto& r : replicas_) {
    switch (r->state) {
      case State::kStarting:
        pollStarting(*r);
        break;
      case State::kDraining:
        // The slot drains in HAProxy; once the manager freed it (idle), stop the process.
        if (registry_.slotReleased(registrationOf(*r, r->http_port, r->grpc_port)) ||
            secondsSince(r->since) > r->graceful_s) {
          launcher_.signal(r->pid, SIGTERM);
          crashPoint("supervisor.replica_stopping");  // told to stop; the file says draining
          r->state = State::kStopping;
          r->since = clock_.now();
        }
        break;
      case State::kStopping:
        if (secondsSince(r->since) > r->graceful_s) {
          spdlog::warn("supervisor: replica {} (pid {}) did not stop within {} s; killing it",
                       r->id, r->pid, r->graceful_s);
          launcher_.signal(r->pid, SIGKILL);
        }
        break;
      default:
        break;
    }
  }
}

void ReplicaSupervisor::reconcileDeployments() {
  std::map<std::string, std::pair<const ApplicationSpec*, const DeploymentSpec*>> wanted;
  if (!stopping_ && config_ != nullptr) {
    for (const ApplicationSpec& app : config_->applications) {
      const DeploymentSpec& d = ingressDeployment(app);
      wanted[app.name + "/" + d.name] = {&app, &d};
    }
  }
  // Replicas of deployments no longer wanted retire.
  for (auto& r : replicas_) {
    if (!r->retiring && wanted.count(r->application + "/" + r->deployment) == 0) {
      retire(*r);
    }
  }
  for (const auto& [key, spec] : wanted) {
    const auto& [app, d] = spec;
    const std::string fp = fingerprint(*config_, *d);
    tendDeployment(key, *app, *d, fp);
    convergeDeployment(key, *app, *d, fp);
  }
}

void ReplicaSupervisor::tendDeployment(const std::string& key, const ApplicationSpec& app,
                                       const DeploymentSpec& d, const std::string& fingerprint) {
  for (auto& r : replicas_) {
    if (r->retiring || r->application + "/" + r->deployment != key) {
      continue;
    }
    // Waiting replicas whose backoff elapsed start again.
    if (r->state == State::kBackoff && upToDate(*r, fingerprint) && clock_.now() >= r->next_start) {
      startReplica(*r, app, d);
    }
    if (r->state == State::kServing && upToDate(*r, fingerprint)) {
      controlServing(*r, d);
    }
  }
}

void ReplicaSupervisor::convergeDeployment(const std::string& key, const ApplicationSpec& app,
                                           const DeploymentSpec& d,
                                           const std::string& fingerprint) {
  int current = 0;  // up to date and not retiring: starting, serving or waiting to restart
  int serving = 0;
  std::vector<Replica*> outdated;
  for (auto& r : replicas_) {
    if (r->retiring || r->application + "/" + r->deployment != key) {
      continue;
    }
    if (upToDate(*r, fingerprint)) {
      ++current;
      serving += r->state == State::kServing ? 1 : 0;
    } else {
      outdated.push_back(r.get());
    }
  }
  const int target = d.num_replicas;
  if (!outdated.empty()) {
    // Rolling update: one new replica at a time; an old one leaves once a new one serves.
    const int in_flight = current - serving;  // new ones not serving yet
    if (serving > 0 && static_cast<int>(outdated.size()) + serving > target) {
      retire(*outdated.front());
    } else if (current < target && in_flight == 0) {
      addReplica(app, d, fingerprint);
    }
    return;
  }
  // Scale.
  for (int i = current; i < target; ++i) {
    addReplica(app, d, fingerprint);
  }
  for (int i = target; i < current; ++i) {
    // Newest first; prefer ones not serving yet.
    for (auto it = replicas_.rbegin(); it != replicas_.rend(); ++it) {
      Replica& r = **it;
      if (!r.retiring && upToDate(r, fingerprint) && r.application + "/" + r.deployment == key) {
        retire(r);
        break;
      }
    }
  }
}

void ReplicaSupervisor::addReplica(const ApplicationSpec& app, const DeploymentSpec& d,
                                   const std::string& fingerprint) {
  auto r = std::make_unique<Replica>();
  r->application = app.name;
  r->deployment = d.name;
  r->spec = fingerprint;
  startReplica(*r, app, d);
  replicas_.push_back(std::move(r));
}

void ReplicaSupervisor::startReplica(Replica& r, const ApplicationSpec& app,
                                     const DeploymentSpec& d) {
  const std::string key = app.name + "/" + d.name;
  if (r.id.empty()) {
    r.id = absl::StrCat(app.name, ".", d.name, ".", next_index_[key]++);
  }
  r.graceful_s = d.graceful_shutdown_timeout_s;
  r.since = clock_.now();
  r.replace = false;
  r.unhealthy_polls = 0;
  r.user_config = d.user_config_json;  // what the config file it reads says
  if (!takeResources(r, d)) {
    return;
  }
  r.control_socket = controlSocketPath(options_.control_dir, r.id);
  spawnReplica(r, replicaArgs(r, app, d), replicaEnvironment(d.ray_actor_options.num_cpus, r.gpus));
}

// Ports and GPUs for the replica; false (restart scheduled, nothing held) when any is short.
bool ReplicaSupervisor::takeResources(Replica& r, const DeploymentSpec& d) {
  StatusOr<int> port = http_ports_.allocate(clock_.now());
  if (!port.ok()) {
    spdlog::error("supervisor: cannot start {}: {}", r.id, messageOf(port.status()));
    scheduleRestart(r, messageOf(port.status()));
    return false;
  }
  StatusOr<int> grpc_port = grpc_ports_.allocate(clock_.now());
  if (!grpc_port.ok()) {
    http_ports_.release(*port, clock_.now());
    spdlog::error("supervisor: cannot start {}: {}", r.id, messageOf(grpc_port.status()));
    scheduleRestart(r, messageOf(grpc_port.status()));
    return false;
  }
  StatusOr<std::vector<int>> gpus = gpus_.take(d.ray_actor_options.num_gpus);
  if (!gpus.ok()) {
    http_ports_.release(*port, clock_.now());
    grpc_ports_.release(*grpc_port, clock_.now());
    spdlog::error("supervisor: cannot start {}: {}", r.id, messageOf(gpus.status()));
    scheduleRestart(r, messageOf(gpus.status()));
    return false;
  }
  r.http_port = *port;
  r.grpc_port = *grpc_port;
  r.gpus = *gpus;
  r.gpu_amount = d.ray_actor_options.num_gpus;
  return true;
}

std::vector<std::string> ReplicaSupervisor::replicaArgs(const Replica& r,
                                                        const ApplicationSpec& app,
                                                        const DeploymentSpec& d) const {
  std::vector<std::string> args = {options_.replica_binary, "--config", config_path_, "--app",
                                   app.name, "--deployment", d.name, "--http-port",
                                   std::to_string(r.http_port), "--grpc-port",
                                   std::to_string(r.grpc_port), "--log-dir", options_.log_dir,
                                   // HAProxy stopped sending before SIGTERM: no need to linger.
                                   "--draining-period-s", "0"};
  if (!base_dir_.empty()) {
    args.insert(args.end(), {"--base-dir", base_dir_});
  }
  if (!r.control_socket.empty()) {
    args.insert(args.end(), {"--control-socket", r.control_socket});
  }
  return args;
}

// Runs the replica with stdout on a pipe we read its events from and stderr appended to its log.
void ReplicaSupervisor::spawnReplica(Replica& r, std::vector<std::string> args,
                                     std::vector<std::string> env) {
  std::error_code ec;
  std::filesystem::create_directories(options_.log_dir, ec);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    releaseResources(r);
    scheduleRestart(r, std::strerror(errno));
    return;
  }
  const int log_fd = ::open(logPath(r).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  SpawnRequest request;
  request.argv = std::move(args);
  request.env = std::move(env);
  request.stdout_fd = fds[1];
  request.stderr_fd = log_fd >= 0 ? log_fd : fds[1];
  // Its own process group keeps a terminal's Ctrl-C away from it: the manager drains it
  // through HAProxy first. Its stdin is the manager's, as it always was.
  request.own_process_group = true;
  request.close_other_fds = true;
  StatusOr<pid_t> pid = launcher_.spawn(request);
  ::close(fds[1]);
  if (log_fd >= 0) {
    ::close(log_fd);
  }
  if (!pid.ok()) {
    ::close(fds[0]);
    releaseResources(r);
    scheduleRestart(
        r, absl::StrCat("cannot run ", options_.replica_binary, ": ", messageOf(pid.status())));
    return;
  }
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  r.pid = *pid;
  r.out_fd = fds[0];
  r.out.clear();
  r.state = State::kStarting;
  r.since = clock_.now();
  spdlog::info("supervisor: started replica {} (pid {}, port {}{}{})", r.id, r.pid, r.http_port,
               r.gpus.empty() ? "" : ", CUDA_VISIBLE_DEVICES=", cudaVisibleDevices(r.gpus));
  crashPoint("supervisor.replica_spawned");  // running, not yet in the state file
}

void ReplicaSupervisor::pollStarting(Replica& r) {
  readAvailable(r.out_fd, r.out, std::numeric_limits<std::size_t>::max());
  const std::size_t pos = r.out.find("{\"event\":\"ready\"");
  if (pos != std::string::npos && r.out.find('\n', pos) != std::string::npos) {
    registerReady(r, r.out.substr(pos, r.out.find('\n', pos) - pos));
    return;
  }
  if (secondsSince(r.since) > options_.ready_timeout_s) {
    spdlog::error("supervisor: replica {} not ready after {} s; killing it", r.id,
                  options_.ready_timeout_s);
    launcher_.signal(r.pid, SIGKILL);
  }
}

// The replica printed its ready line: into a slot, and serving.
void ReplicaSupervisor::registerReady(Replica& r, const std::string& ready_line) {
  nlohmann::json ready = nlohmann::json::parse(ready_line, nullptr, false);
  const int port = ready.is_object() ? ready.value("http_port", 0) : 0;
  const auto grpc = ready.is_object() ? ready.find("grpc_port") : ready.end();
  const ReplicaRegistration reg =
      registrationOf(r, port > 0 ? port : r.http_port,
                     grpc != ready.end() && grpc->is_number_integer() ? grpc->get<int>() : 0);
  StatusOr<ApplyOutcome> outcome = registry_.registerReplica(reg);
  if (!outcome.ok()) {
    spdlog::error("supervisor: registering replica {} failed: {}", r.id,
                  messageOf(outcome.status()));
    retire(r);
    return;
  }
  spdlog::info("supervisor: replica {} serves on port {} ({} ms after its start)", r.id,
               reg.http_port, static_cast<int>(secondsSince(r.since) * 1000));
  crashPoint("supervisor.replica_registered");  // in a slot; the state file says starting
  r.state = State::kServing;
  r.since = clock_.now();
  r.last_error.clear();
  r.next_poll = clock_.now() + options_.health_poll_period;
}

ReplicaRegistration ReplicaSupervisor::registrationOf(const Replica& r, int http_port,
                                                      int grpc_port) const {
  ReplicaRegistration reg;
  reg.replica_id = r.id;
  reg.application = r.application;
  reg.deployment = r.deployment;
  reg.host = options_.replica_env.http_host == "0.0.0.0" || options_.replica_env.http_host == "::"
                 ? "127.0.0.1"
                 : options_.replica_env.http_host;
  reg.http_port = http_port;
  reg.grpc_port = grpc_port;
  reg.pid = static_cast<int>(r.pid);
  return reg;
}

void ReplicaSupervisor::retire(Replica& r) {
  r.retiring = true;
  switch (r.state) {
    case State::kServing: {
      StatusOr<ApplyOutcome> out = registry_.deregisterReplica(r.id);
      if (!out.ok()) {
        spdlog::warn("supervisor: deregistering {}: {}", r.id, messageOf(out.status()));
      }
      crashPoint("supervisor.replica_deregistered");  // draining; the state file says serving
      r.state = State::kDraining;
      r.since = clock_.now();
      break;
    }
    case State::kStarting:
      launcher_.signal(r.pid, SIGTERM);
      r.state = State::kStopping;
      r.since = clock_.now();
      break;
    default:
      break;
  }
}

void ReplicaSupervisor::reap() {
  for (auto& r : replicas_) {
    if (r->pid <= 0) {
      continue;
    }
    if (r->adopted) {
      // Not our child: gone when the pid is (or is a zombie for init to reap).
      if (!launcher_.running(r->pid)) {
        onExit(*r, 0x7f00);  // exit status unknown: reported as "exit code 127"
      }
      continue;
    }
    const ChildStatus child = launcher_.reap(r->pid);
    if (child.state == ChildStatus::State::kExited) {
      onExit(*r, child.wait_status);
    }
  }
  std::erase_if(replicas_, [](const std::unique_ptr<Replica>& r) {
    return r->retiring && r->pid <= 0 && r->state != State::kBackoff;
  });
}

void ReplicaSupervisor::onExit(Replica& r, int status) {
  const std::string how = WIFEXITED(status) ? absl::StrCat("exit code ", WEXITSTATUS(status))
                                            : absl::StrCat("signal ", WTERMSIG(status));
  const State was = r.state;
  std::string failure;  // what a replica that could not start said (its "failed" event)
  if (r.out_fd >= 0) {
    readAvailable(r.out_fd, r.out, 1 << 20);
    failure = failureIn(r.out);
    ::close(r.out_fd);
    r.out_fd = -1;
  }
  r.pid = -1;
  if (was == State::kServing) {
    // Died while in service: take it out before anything else.
    registry_.deregisterReplica(r.id).IgnoreError();
  }
  const bool bind_failure = was == State::kStarting && blockPortIfTaken(r);
  releaseResources(r);
  if (r.retiring || stopping_) {
    spdlog::info("supervisor: replica {} stopped ({})", r.id, how);
    r.state = State::kStopping;  // erased by reap()
    return;
  }
  if (bind_failure) {
    // Not a crash: someone else holds the port. Try again at once on another one.
    r.state = State::kBackoff;
    r.next_start = clock_.now();
    return;
  }
  ++restarts_total_;
  registry_.recordReplicaRestart();
  scheduleRestart(r, failure.empty() ? absl::StrCat("exited unexpectedly (", how, ")")
                                     : absl::StrCat("failed to start: ", failure));
}

// A port someone else holds: the replica says so as the last line of its stderr (its log file),
// naming the flag of the port it could not bind, and exits. That port is blocked for good.
bool ReplicaSupervisor::blockPortIfTaken(Replica& r) {
  bool bind_failure = false;
  {
    std::ifstream log(logPath(r));
    for (std::string line; std::getline(log, line);) {
      bind_failure = line.find("Address already in use") != std::string::npos;
    }
  }
  if (!bind_failure) {
    return false;
  }
  std::ifstream log(logPath(r));
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  const std::size_t grpc_at = text.rfind("--grpc-port");
  const std::size_t http_at = text.rfind("--http-port");
  const bool grpc =
      grpc_at != std::string::npos && (http_at == std::string::npos || grpc_at > http_at);
  const int taken = grpc ? r.grpc_port : r.http_port;
  spdlog::warn("supervisor: port {} is taken by another process; not using it again", taken);
  (grpc ? grpc_ports_ : http_ports_).block(taken);
  return true;
}

void ReplicaSupervisor::scheduleRestart(Replica& r, const std::string& why) {
  // Backoff doubles per crash, and starts over only after backoff_reset_after_s of service: a
  // replica that crashes soon after it became ready (a bad request path, a leak that kills it
  // in seconds) must not be restarted every second forever.
  if (r.state == State::kServing && secondsSince(r.since) > options_.backoff_reset_after_s) {
    r.restarts = 0;
  }
  const double delay =
      std::min(options_.backoff_max_s, options_.backoff_initial_s * std::pow(2.0, r.restarts));
  ++r.restarts;
  r.last_error = why;
  r.state = State::kBackoff;
  r.next_start = clock_.now() + seconds(delay);
  spdlog::warn("supervisor: replica {} {}; restarting in {:.1f} s", r.id, why, delay);
}

void ReplicaSupervisor::controlServing(Replica& r, const DeploymentSpec& d) {
  if (r.reconfiguring.valid()) {
    if (r.reconfiguring.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      return;
    }
    const Status st = r.reconfiguring.get();
    if (st.ok()) {
      r.user_config = r.reconfiguring_to;
      spdlog::info("supervisor: replica {} reconfigured in place", r.id);
    } else {
      r.replace = true;
      r.last_error = absl::StrCat("reconfigure failed: ", st.message());
      spdlog::error("supervisor: replica {} {}; replacing it", r.id, r.last_error);
    }
    return;
  }
  if (r.user_config != d.user_config_json) {
    startReconfigure(r, d);
    return;
  }
  pollHealth(r);
}

// Asks the replica to take the deployment's new user_config, off the loop's thread (its
// reconfigure may take up to health_check_timeout_s).
void ReplicaSupervisor::startReconfigure(Replica& r, const DeploymentSpec& d) {
  if (r.control_socket.empty()) {
    r.replace = true;  // no way to reach it: the rolling update restarts it with the new one
    return;
  }
  r.reconfiguring_to = d.user_config_json;
  const double timeout_s = d.health_check_timeout_s;
  const nlohmann::json request = {{"op", "reconfigure"},
                                  {"user_config", nlohmann::json::parse(d.user_config_json)},
                                  {"timeout_s", timeout_s}};
  spdlog::info("supervisor: reconfiguring replica {} with user_config {}", r.id,
               d.user_config_json);
  r.reconfiguring = std::async(
      std::launch::async,
      [&control = control_, path = r.control_socket, request, timeout_s]() -> Status {
        StatusOr<nlohmann::json> reply = control.request(
            path, request,
            std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000) + 5000));
        if (!reply.ok()) {
          return reply.status();
        }
        if (!reply->value("ok", false)) {
          return absl::UnavailableError(reply->value("error", std::string("no reason given")));
        }
        return absl::OkStatus();
      });
}

// Every health_poll_period: kUnhealthyPolls "unhealthy" answers in a row mark it for replacement.
void ReplicaSupervisor::pollHealth(Replica& r) {
  if (r.control_socket.empty() || clock_.now() < r.next_poll) {
    return;
  }
  r.next_poll = clock_.now() + options_.health_poll_period;
  StatusOr<nlohmann::json> reply =
      control_.request(r.control_socket, {{"op", "health"}}, std::chrono::milliseconds(500));
  if (!reply.ok() || reply->value("state", "") != "unhealthy") {
    // Healthy, draining, or no answer: a replica too wedged to answer is HAProxy's to take out
    // (its checks fail too) and the watchdog's to report.
    r.unhealthy_polls = 0;
    return;
  }
  if (++r.unhealthy_polls < kUnhealthyPolls) {
    return;
  }
  r.replace = true;
  r.last_error = absl::StrCat("unhealthy: ", reply->value("reason", std::string()));
  spdlog::error("supervisor: replica {} reported unhealthy {} times in a row ({}); replacing it",
                r.id, kUnhealthyPolls, r.last_error);
}

void ReplicaSupervisor::releaseResources(Replica& r) {
  if (r.http_port > 0 && http_ports_.inUse(r.http_port)) {
    http_ports_.release(r.http_port, clock_.now());
  }
  if (r.grpc_port > 0 && grpc_ports_.inUse(r.grpc_port)) {
    grpc_ports_.release(r.grpc_port, clock_.now());
  }
  if (!r.gpus.empty()) {
    gpus_.give(r.gpus, r.gpu_amount);
    r.gpus.clear();
  }
}

}  // namespace serve::manager
