#include "haproxy-manager/supervise/replica_supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "haproxy-manager/haproxy/unix_socket.h"
#include "haproxy-manager/model/desired_state.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

extern char** environ;

namespace serve::manager {

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

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

// Sends one control request and returns the replica's reply object; errors name the socket.
StatusOr<nlohmann::json> controlRequest(const std::string& path, const nlohmann::json& request,
                                        std::chrono::milliseconds timeout) {
  StatusOr<std::string> reply = unixSocketRequest(path, request.dump() + "\n", timeout);
  if (!reply.ok()) {
    return reply.status();
  }
  nlohmann::json parsed = nlohmann::json::parse(*reply, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return absl::InternalError(absl::StrCat(path, ": not a JSON object: ", *reply));
  }
  return parsed;
}

const char* stateName(int s) {
  static const char* names[] = {"starting", "serving", "draining", "stopping", "backoff"};
  return names[s];
}

}  // namespace

ReplicaSupervisor::ReplicaSupervisor(SupervisorOptions options, Manager& manager)
    : options_(std::move(options)),
      manager_(manager),
      http_ports_("HTTP", options_.replica_env.min_http_port, options_.replica_env.max_http_port,
                  options_.port_quarantine),
      grpc_ports_("gRPC", options_.replica_env.min_grpc_port, options_.replica_env.max_grpc_port,
                  options_.port_quarantine),
      gpus_(options_.gpu_count) {}

ReplicaSupervisor::~ReplicaSupervisor() { stop(); }

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
  std::ifstream in(state_file);
  if (!in) {
    return;
  }
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json state = nlohmann::json::parse(text.str(), nullptr, false);
  if (state.is_discarded() || !state.contains("replicas")) {
    return;
  }
  for (const auto& j : state["replicas"]) {
    const int pid = j.value("pid", 0);
    std::ifstream cmdline(absl::StrCat("/proc/", pid, "/cmdline"));
    std::string cmd((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    if (pid <= 0 || cmd.find("serve-replica") == std::string::npos) {
      continue;  // gone (or the pid now belongs to something else)
    }
    auto r = std::make_unique<Replica>();
    r->id = j.value("replica_id", "");
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
    r->state = State::kServing;
    r->adopted = true;
    r->since = Clock::now();
    http_ports_.markInUse(r->http_port);
    if (r->grpc_port > 0) {
      grpc_ports_.markInUse(r->grpc_port);
    }
    gpus_.reserve(r->gpus, r->gpu_amount);
    const std::string key = r->application + "/" + r->deployment;
    const std::size_t dot = r->id.rfind('.');
    if (dot != std::string::npos) {
      next_index_[key] = std::max(next_index_[key], std::atoi(r->id.c_str() + dot + 1) + 1);
    }
    spdlog::info("supervisor: adopted replica {} (pid {}, port {})", r->id, pid, r->http_port);
    replicas_.push_back(std::move(r));
  }
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
                        {"graceful_s", r->graceful_s}});
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
    cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
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
  for (auto& r : replicas_) {
    switch (r->state) {
      case State::kStarting:
        pollStarting(*r);
        break;
      case State::kDraining:
        // The slot drains in HAProxy; once the manager freed it (idle), stop the process.
        if (manager_.slotReleased(r->id) || secondsSince(r->since) > r->graceful_s) {
          ::kill(r->pid, SIGTERM);
          r->state = State::kStopping;
          r->since = Clock::now();
        }
        break;
      case State::kStopping:
        if (secondsSince(r->since) > r->graceful_s) {
          spdlog::warn("supervisor: replica {} (pid {}) did not stop within {} s; killing it",
                       r->id, r->pid, r->graceful_s);
          ::kill(r->pid, SIGKILL);
        }
        break;
      default:
        break;
    }
  }
  reconcileDeployments();
  // Retired replicas that never ran (backoff) leave at once.
  std::erase_if(replicas_, [](const std::unique_ptr<Replica>& r) {
    return r->retiring && r->state == State::kBackoff;
  });
  saveState();
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
    for (auto& r : replicas_) {
      if (r->retiring || r->application + "/" + r->deployment != key) {
        continue;
      }
      // Waiting replicas whose backoff elapsed start again.
      if (r->state == State::kBackoff && upToDate(*r, fp) && Clock::now() >= r->next_start) {
        startReplica(*r, *app, *d);
      }
      if (r->state == State::kServing && upToDate(*r, fp)) {
        controlServing(*r, *d);
      }
    }
    int current = 0;  // up to date and not retiring: starting, serving or waiting to restart
    int serving = 0;
    std::vector<Replica*> outdated;
    std::vector<Replica*> fresh_serving;
    for (auto& r : replicas_) {
      if (r->retiring || r->application + "/" + r->deployment != key) {
        continue;
      }
      if (upToDate(*r, fp)) {
        ++current;
        if (r->state == State::kServing) {
          ++serving;
          fresh_serving.push_back(r.get());
        }
      } else {
        outdated.push_back(r.get());
      }
    }
    // Rolling update: one new replica at a time; an old one leaves once a new one serves.
    const int outdated_count = static_cast<int>(outdated.size());
    const int target = d->num_replicas;
    if (outdated_count > 0) {
      const int in_flight = current - serving;  // new ones not serving yet
      if (serving > 0 && static_cast<int>(outdated.size()) + serving > target) {
        retire(*outdated.front());
        continue;
      }
      if (current < target && in_flight == 0) {
        auto r = std::make_unique<Replica>();
        r->application = app->name;
        r->deployment = d->name;
        r->spec = fp;
        startReplica(*r, *app, *d);
        replicas_.push_back(std::move(r));
      }
      continue;
    }
    // Scale.
    for (int i = current; i < target; ++i) {
      auto r = std::make_unique<Replica>();
      r->application = app->name;
      r->deployment = d->name;
      r->spec = fp;
      startReplica(*r, *app, *d);
      replicas_.push_back(std::move(r));
    }
    for (int i = target; i < current; ++i) {
      // Newest first; prefer ones not serving yet.
      Replica* victim = nullptr;
      for (auto it = replicas_.rbegin(); it != replicas_.rend(); ++it) {
        Replica& r = **it;
        if (!r.retiring && upToDate(r, fp) && r.application + "/" + r.deployment == key) {
          victim = &r;
          break;
        }
      }
      if (victim != nullptr) {
        retire(*victim);
      }
    }
  }
}

void ReplicaSupervisor::startReplica(Replica& r, const ApplicationSpec& app,
                                     const DeploymentSpec& d) {
  const std::string key = app.name + "/" + d.name;
  if (r.id.empty()) {
    r.id = absl::StrCat(app.name, ".", d.name, ".", next_index_[key]++);
  }
  r.graceful_s = d.graceful_shutdown_timeout_s;
  r.since = Clock::now();
  r.replace = false;
  r.unhealthy_polls = 0;
  r.user_config = d.user_config_json;  // what the config file it reads says
  StatusOr<int> port = http_ports_.allocate(Clock::now());
  if (!port.ok()) {
    spdlog::error("supervisor: cannot start {}: {}", r.id, messageOf(port.status()));
    scheduleRestart(r, messageOf(port.status()));
    return;
  }
  StatusOr<int> grpc_port = grpc_ports_.allocate(Clock::now());
  if (!grpc_port.ok()) {
    http_ports_.release(*port, Clock::now());
    spdlog::error("supervisor: cannot start {}: {}", r.id, messageOf(grpc_port.status()));
    scheduleRestart(r, messageOf(grpc_port.status()));
    return;
  }
  StatusOr<std::vector<int>> gpus = gpus_.take(d.ray_actor_options.num_gpus);
  if (!gpus.ok()) {
    http_ports_.release(*port, Clock::now());
    grpc_ports_.release(*grpc_port, Clock::now());
    spdlog::error("supervisor: cannot start {}: {}", r.id, messageOf(gpus.status()));
    scheduleRestart(r, messageOf(gpus.status()));
    return;
  }
  r.http_port = *port;
  r.grpc_port = *grpc_port;
  r.gpus = *gpus;
  r.gpu_amount = d.ray_actor_options.num_gpus;

  std::error_code ec;
  std::filesystem::create_directories(options_.log_dir, ec);
  const std::string log_path = absl::StrCat(options_.log_dir, "/replica-", r.id, ".log");
  std::vector<std::string> args = {options_.replica_binary, "--config", config_path_, "--app",
                                   app.name, "--deployment", d.name, "--http-port",
                                   std::to_string(r.http_port), "--grpc-port",
                                   std::to_string(r.grpc_port), "--log-dir", options_.log_dir,
                                   // HAProxy stopped sending before SIGTERM: no need to linger.
                                   "--draining-period-s", "0"};
  if (!base_dir_.empty()) {
    args.insert(args.end(), {"--base-dir", base_dir_});
  }
  r.control_socket = controlSocketPath(options_.control_dir, r.id);
  if (!r.control_socket.empty()) {
    args.insert(args.end(), {"--control-socket", r.control_socket});
  }
  // The environment: ours, plus the replica's threads and devices.
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (entry.rfind("OMP_NUM_THREADS=", 0) == 0 || entry.rfind("CUDA_VISIBLE_DEVICES=", 0) == 0) {
      continue;
    }
    env.push_back(entry);
  }
  const int threads = std::max(1, static_cast<int>(std::ceil(d.ray_actor_options.num_cpus)));
  env.push_back(absl::StrCat("OMP_NUM_THREADS=", threads));
  if (!r.gpus.empty()) {
    env.push_back("CUDA_VISIBLE_DEVICES=" + cudaVisibleDevices(r.gpus));
  }

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    releaseResources(r);
    scheduleRestart(r, std::strerror(errno));
    return;
  }
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, log_fd >= 0 ? log_fd : fds[1], 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);
  // The manager blocks SIGTERM/SIGINT/SIGHUP for sigwait(); a child inherits that mask, so
  // reset it, or the replica could not be asked to drain. Its own process group keeps a
  // terminal's Ctrl-C away from it: the manager drains it through HAProxy first.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGUSR1, SIGUSR2}) {
    sigaddset(&defaults, sig);
  }
  posix_spawnattr_setsigdefault(&attr, &defaults);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (log_fd >= 0) {
    ::close(log_fd);
  }
  if (rc != 0) {
    ::close(fds[0]);
    releaseResources(r);
    scheduleRestart(r,
                    absl::StrCat("cannot run ", options_.replica_binary, ": ", std::strerror(rc)));
    return;
  }
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  r.pid = pid;
  r.out_fd = fds[0];
  r.out.clear();
  r.state = State::kStarting;
  r.since = Clock::now();
  spdlog::info("supervisor: started replica {} (pid {}, port {}{}{})", r.id, pid, r.http_port,
               r.gpus.empty() ? "" : ", CUDA_VISIBLE_DEVICES=", cudaVisibleDevices(r.gpus));
}

void ReplicaSupervisor::pollStarting(Replica& r) {
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(r.out_fd, buf, sizeof(buf));
    if (n <= 0) {
      break;
    }
    r.out.append(buf, static_cast<std::size_t>(n));
  }
  const std::size_t pos = r.out.find("{\"event\":\"ready\"");
  if (pos != std::string::npos && r.out.find('\n', pos) != std::string::npos) {
    const std::string line = r.out.substr(pos, r.out.find('\n', pos) - pos);
    nlohmann::json ready = nlohmann::json::parse(line, nullptr, false);
    const int port = ready.is_object() ? ready.value("http_port", 0) : 0;
    ReplicaRegistration reg;
    reg.replica_id = r.id;
    reg.application = r.application;
    reg.deployment = r.deployment;
    reg.host = options_.replica_env.http_host == "0.0.0.0" || options_.replica_env.http_host == "::"
                   ? "127.0.0.1"
                   : options_.replica_env.http_host;
    reg.http_port = port > 0 ? port : r.http_port;
    const auto grpc = ready.is_object() ? ready.find("grpc_port") : ready.end();
    reg.grpc_port = grpc != ready.end() && grpc->is_number_integer() ? grpc->get<int>() : 0;
    reg.pid = static_cast<int>(r.pid);
    StatusOr<ApplyOutcome> outcome = manager_.registerReplica(reg);
    if (!outcome.ok()) {
      spdlog::error("supervisor: registering replica {} failed: {}", r.id,
                    messageOf(outcome.status()));
      retire(r);
      return;
    }
    spdlog::info("supervisor: replica {} serves on port {} ({} ms after its start)", r.id,
                 reg.http_port, static_cast<int>(secondsSince(r.since) * 1000));
    r.state = State::kServing;
    r.since = Clock::now();
    r.last_error.clear();
    r.next_poll = Clock::now() + options_.health_poll_period;
    return;
  }
  if (secondsSince(r.since) > options_.ready_timeout_s) {
    spdlog::error("supervisor: replica {} not ready after {} s; killing it", r.id,
                  options_.ready_timeout_s);
    ::kill(r.pid, SIGKILL);
  }
}

void ReplicaSupervisor::retire(Replica& r) {
  r.retiring = true;
  switch (r.state) {
    case State::kServing: {
      StatusOr<ApplyOutcome> out = manager_.deregisterReplica(r.id);
      if (!out.ok()) {
        spdlog::warn("supervisor: deregistering {}: {}", r.id, messageOf(out.status()));
      }
      r.state = State::kDraining;
      r.since = Clock::now();
      break;
    }
    case State::kStarting:
      ::kill(r.pid, SIGTERM);
      r.state = State::kStopping;
      r.since = Clock::now();
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
      std::ifstream stat(absl::StrCat("/proc/", r->pid, "/stat"));
      std::string line;
      std::getline(stat, line);
      const std::size_t close = line.rfind(')');
      const bool zombie =
          close != std::string::npos && line.size() > close + 2 && line[close + 2] == 'Z';
      if (line.empty() || zombie) {
        onExit(*r, 0x7f00);  // exit status unknown: reported as "exit code 127"
      }
      continue;
    }
    int status = 0;
    if (::waitpid(r->pid, &status, WNOHANG) == r->pid) {
      onExit(*r, status);
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
    char buf[4096];
    ssize_t n = 0;
    while ((n = ::read(r.out_fd, buf, sizeof(buf))) > 0 && r.out.size() < (1 << 20)) {
      r.out.append(buf, static_cast<std::size_t>(n));
    }
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      nlohmann::json event = nlohmann::json::parse(line, nullptr, false);
      if (event.is_object() && event.value("event", "") == "failed" && event.contains("error") &&
          event["error"].is_string()) {
        failure = event["error"].get<std::string>();
      }
    }
    ::close(r.out_fd);
    r.out_fd = -1;
  }
  r.pid = -1;
  if (was == State::kServing) {
    // Died while in service: take it out before anything else.
    manager_.deregisterReplica(r.id).IgnoreError();
  }
  // A port someone else holds: the replica says so on stderr (its log file) and exits.
  bool bind_failure = false;
  if (was == State::kStarting) {
    const std::string log_path = absl::StrCat(options_.log_dir, "/replica-", r.id, ".log");
    std::ifstream log(log_path);
    std::string line;
    while (std::getline(log, line)) {
      bind_failure = line.find("Address already in use") != std::string::npos;
    }
  }
  if (bind_failure) {
    // The replica names the flag of the port it could not bind; block that one.
    const std::string log_path = absl::StrCat(options_.log_dir, "/replica-", r.id, ".log");
    std::ifstream log(log_path);
    const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    const std::size_t grpc_at = text.rfind("--grpc-port");
    const std::size_t http_at = text.rfind("--http-port");
    const bool grpc =
        grpc_at != std::string::npos && (http_at == std::string::npos || grpc_at > http_at);
    const int taken = grpc ? r.grpc_port : r.http_port;
    spdlog::warn("supervisor: port {} is taken by another process; not using it again", taken);
    (grpc ? grpc_ports_ : http_ports_).block(taken);
  }
  releaseResources(r);
  if (r.retiring || stopping_) {
    spdlog::info("supervisor: replica {} stopped ({})", r.id, how);
    r.state = State::kStopping;  // erased by reap()
    return;
  }
  if (bind_failure) {
    // Not a crash: someone else holds the port. Try again at once on another one.
    r.state = State::kBackoff;
    r.next_start = Clock::now();
    return;
  }
  ++restarts_total_;
  manager_.recordReplicaRestart();
  scheduleRestart(r, failure.empty() ? absl::StrCat("exited unexpectedly (", how, ")")
                                     : absl::StrCat("failed to start: ", failure));
}

void ReplicaSupervisor::scheduleRestart(Replica& r, const std::string& why) {
  // Backoff doubles per crash, and starts over after a healthy period.
  if (r.state == State::kServing || secondsSince(r.since) > options_.backoff_reset_after_s) {
    r.restarts = 0;
  }
  const double delay =
      std::min(options_.backoff_max_s, options_.backoff_initial_s * std::pow(2.0, r.restarts));
  ++r.restarts;
  r.last_error = why;
  r.state = State::kBackoff;
  r.next_start = Clock::now() + seconds(delay);
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
    r.reconfiguring =
        std::async(std::launch::async, [path = r.control_socket, request, timeout_s]() -> Status {
          StatusOr<nlohmann::json> reply = controlRequest(
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
    return;
  }
  if (r.control_socket.empty() || Clock::now() < r.next_poll) {
    return;
  }
  r.next_poll = Clock::now() + options_.health_poll_period;
  StatusOr<nlohmann::json> reply =
      controlRequest(r.control_socket, {{"op", "health"}}, std::chrono::milliseconds(500));
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
    http_ports_.release(r.http_port, Clock::now());
  }
  if (r.grpc_port > 0 && grpc_ports_.inUse(r.grpc_port)) {
    grpc_ports_.release(r.grpc_port, Clock::now());
  }
  if (!r.gpus.empty()) {
    gpus_.give(r.gpus, r.gpu_amount);
    r.gpus.clear();
  }
}

}  // namespace serve::manager
