#include "haproxy-manager/reconcile/manager.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/names.h"
#include "haproxy-manager/haproxy/runtime_api.h"
#include "haproxy-manager/haproxy/show_parsers.h"
#include "haproxy-manager/reconcile/global_settings.h"
#include "haproxy-manager/reconcile/observed_state.h"
#include "spdlog/spdlog.h"

namespace serve::manager {

namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Writes through a temporary file and rename(), so HAProxy never reads a half-written file.
Status writeFileAtomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  }
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(err)));
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", tmp, " to ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// After a reload the new worker has nothing in flight on draining slots: they are free there.
RoutingTable withDrainingFreed(RoutingTable table) {
  for (Backend& backend : table.backends) {
    for (Slot& slot : backend.slots) {
      if (slot.state == SlotState::kDraining) {
        slot = Slot{};
      }
    }
  }
  return table;
}

const char* slotStateName(SlotState state) {
  switch (state) {
    case SlotState::kFree:
      return "free";
    case SlotState::kActive:
      return "active";
    case SlotState::kDraining:
      return "draining";
  }
  return "unknown";
}

// "set server", "add map", ...: the first two words, for the command counters.
std::string commandKind(const std::string& command) {
  const std::size_t first = command.find(' ');
  const std::size_t second = first == std::string::npos ? first : command.find(' ', first + 1);
  return command.substr(0, second);
}

bool isIpLiteral(const std::string& host) {
  unsigned char buffer[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

int maxconnForFdLimit(int maxconn) {
  // HAProxy needs about two descriptors per connection (client and server side) plus some for
  // listeners, checks and sockets, and refuses to start when it cannot raise its limit that
  // far ("Cannot raise FD limit"). Fit maxconn under the hard limit instead of failing.
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_max == RLIM_INFINITY) {
    return maxconn;
  }
  constexpr rlim_t kReserve = 1000;
  const rlim_t needed = 2 * static_cast<rlim_t>(maxconn) + kReserve;
  if (needed <= limit.rlim_max) {
    return maxconn;
  }
  const int fitted = static_cast<int>(
      limit.rlim_max > 2 * kReserve ? (limit.rlim_max - kReserve) / 2 : limit.rlim_max / 4);
  spdlog::warn(
      "haproxy-manager: maxconn {} needs about {} file descriptors but the hard limit "
      "(ulimit -Hn) is {}; using maxconn {} (raise the limit or set "
      "RAY_SERVE_HAPROXY_MAXCONN)",
      maxconn, needed, static_cast<unsigned long long>(limit.rlim_max), fitted);
  return fitted;
}

// The registrations as status() shows them and the state file keeps them.
nlohmann::json registrationsJson(const std::map<std::string, ReplicaRegistration>& replicas) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [id, r] : replicas) {
    out.push_back({{"replica_id", id},
                   {"application", r.application},
                   {"deployment", r.deployment},
                   {"host", r.host},
                   {"http_port", r.http_port},
                   {"grpc_port", r.grpc_port},
                   {"pid", r.pid}});
  }
  return out;
}

}  // namespace

Manager::Manager(ManagerOptions options, ServeConfig config)
    : options_(std::move(options)),
      config_(std::make_shared<const ServeConfig>(std::move(config))),
      applied_config_(config_) {}

StatusOr<std::unique_ptr<Manager>> Manager::create(ManagerOptions options, ServeConfig config) {
  options.env.maxconn = maxconnForFdLimit(options.env.maxconn);
  HaproxyOptions haproxy;
  haproxy.binary = options.env.haproxy_binary;
  haproxy.config_path = options.env.config_file;
  haproxy.admin_socket_path = options.env.socket_path;
  haproxy.master_socket_path = masterSocketPath(options.env.socket_path);
  haproxy.log_dir = options.env.log_dir;
  haproxy.startup_timeout_s = options.env.startup_timeout_s;
  StatusOr<std::unique_ptr<HaproxyController>> controller =
      HaproxyController::create(std::move(haproxy), processEnv());
  if (!controller.ok()) {
    return controller.status();
  }
  std::unique_ptr<Manager> manager(new Manager(std::move(options), std::move(config)));
  manager->haproxy_ = *std::move(controller);
  return manager;
}

Manager::~Manager() { stop(); }

StatusOr<Templates> Manager::loadTemplates() const {
  return serve::manager::loadTemplates(options_.template_dir);
}

Status Manager::writeFiles(const RenderedConfig& rendered, const std::string& config_path) {
  const std::string dir = std::filesystem::path(options_.env.config_file).parent_path().string();
  for (const auto& [name, content] : rendered.files) {
    if (Status st = writeFileAtomic((dir.empty() ? "." : dir) + "/" + name, content); !st.ok()) {
      return st;
    }
  }
  return writeFileAtomic(config_path, rendered.config);
}

Status Manager::start() {
  const ManagerEnv& env = options_.env;
  std::error_code ec;
  // The admin socket, the control token and HAProxy's files live here: a directory someone
  // else can write to would let them replace those.
  for (const auto& [path, variable] :
       {std::pair{env.config_file, "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"},
        std::pair{env.socket_path, "RAY_SERVE_HAPROXY_SOCKET_PATH"}}) {
    const auto dir = std::filesystem::path(path).parent_path();
    if (!dir.empty()) {
      if (Status st = ensurePrivateDirectory(
              dir.string(), absl::StrCat("use a directory of this user's, e.g. set ", variable,
                                         " to a path inside one"));
          !st.ok()) {
        return st;
      }
    }
  }
  std::filesystem::create_directories(env.log_dir, ec);

  // Bound before HAProxy starts (or is adopted), so its first log line has a reader.
  const GlobalSettings start_global = globalSettings(env, *config_);
  if (!start_global.ingress_log_socket.empty()) {
    ingress_receiver_ =
        std::make_unique<IngressLogReceiver>(start_global.ingress_log_socket, ingress_metrics_);
    if (Status st = ingress_receiver_->start(); !st.ok()) {
      return st;
    }
  }

  // Never fight another HAProxy over the same socket and files; adopt our own.
  AdminSocketClient probe(env.socket_path, std::chrono::milliseconds(500));
  if (StatusOr<std::string> info = probe.execute("show info"); info.ok()) {
    StatusOr<bool> adopted = tryAdopt();
    if (adopted.ok() && *adopted) {
      adopted_ = true;
      started_ = true;
      loop_thread_ = std::thread([this] { loop(); });
      return absl::OkStatus();
    }
    StatusOr<ShowInfo> parsed = parseShowInfo(*info);
    return absl::FailedPreconditionError(absl::StrCat(
        "an HAProxy (pid ", parsed.ok() ? std::to_string(parsed->pid) : std::string("unknown"),
        ") already answers on ", env.socket_path, " and cannot be adopted (",
        adopted.ok() ? "no state file of an earlier manager names it" : messageOf(adopted.status()),
        "); stop it or set RAY_SERVE_HAPROXY_SOCKET_PATH and RAY_SERVE_HAPROXY_CONFIG_FILE_LOC "
        "to another directory"));
  }

  StatusOr<Templates> templates = loadTemplates();
  if (!templates.ok()) {
    return templates.status();
  }
  DesiredInputs inputs;
  inputs.config = config_.get();
  inputs.global = globalSettings(env, *config_);
  inputs.min_server_slots = env.min_server_slots;
  const RoutingTable desired = buildDesired(inputs, RoutingTable{});
  StatusOr<RenderedConfig> rendered = render(desired, *templates);
  if (!rendered.ok()) {
    return rendered.status();
  }
  if (options_.candidate_hook) {
    options_.candidate_hook(rendered->config);
  }
  if (Status st = writeFiles(*rendered, env.config_file); !st.ok()) {
    return st;
  }
  const std::string state_file = statePath(desired.global, kServerStateFile);
  if (!std::filesystem::exists(state_file)) {
    writeFileAtomic(state_file, "1\n").IgnoreError();
  }
  if (Status st = haproxy_->start(); !st.ok()) {
    return st;
  }
  running_ = desired;
  last_good_ = *rendered;
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_snapshot_ = running_;
  }
  updateSlotMetrics();
  started_ = true;
  loop_thread_ = std::thread([this] { loop(); });
  spdlog::info("haproxy-manager: HAProxy master {} serving {} application(s); config {}",
               haproxy_->masterPid(), desired.backends.size(), env.config_file);
  return absl::OkStatus();
}

void Manager::stop(double grace_s) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      return;
    }
    stopping_ = true;
  }
  changed_cv_.notify_all();
  applied_cv_.notify_all();
  if (loop_thread_.joinable()) {
    loop_thread_.join();
  }
  if (haproxy_ != nullptr && started_) {
    haproxy_->stop(grace_s);
  }
  ingress_receiver_.reset();
}

int64_t Manager::quiesce() {
  double grace_s = 1;
  bool grpc = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const ApplicationSpec& app : config_->applications) {
      for (const DeploymentSpec& d : app.deployments) {
        grace_s = std::max(grace_s, d.graceful_shutdown_timeout_s);
      }
    }
    grpc = running_snapshot_.global.grpc_port > 0;
  }
  AdminSocketClient admin(options_.env.socket_path, std::chrono::seconds(2));
  for (const char* frontend : {"http", "grpc"}) {
    if (std::string_view(frontend) == "grpc" && !grpc) {
      continue;
    }
    if (StatusOr<std::string> out = admin.execute(absl::StrCat("disable frontend ", frontend));
        !out.ok()) {
      spdlog::warn("haproxy-manager: disable frontend {}: {}", frontend, messageOf(out.status()));
    }
  }
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(grace_s * 1000));
  int64_t busy = 0;
  while (true) {
    StatusOr<std::string> csv = admin.execute("show stat");
    StatusOr<std::vector<StatRow>> rows =
        csv.ok() ? parseShowStat(*csv) : StatusOr<std::vector<StatRow>>(csv.status());
    if (!rows.ok()) {
      return 0;  // no HAProxy to answer anything: nothing to wait for
    }
    busy = 0;
    for (const StatRow& row : *rows) {
      const bool application =
          absl::StartsWith(row.proxy, "http-") || absl::StartsWith(row.proxy, "grpc-");
      if (application && row.kind == StatKind::kBackend) {
        busy += row.scur + row.qcur;
      }
    }
    if (busy == 0 || std::chrono::steady_clock::now() >= until) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (busy != 0) {
    spdlog::warn(
        "haproxy-manager: {} request(s) still queued or in progress after {} s; stopping "
        "the replicas anyway",
        busy, grace_s);
  }
  return busy;
}

StatusOr<ApplyOutcome> Manager::change(const std::function<Status()>& mutate) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_ || !started_) {
    return absl::UnavailableError("the manager is not running");
  }
  if (Status st = mutate(); !st.ok()) {
    return st;
  }
  const std::uint64_t generation = ++generation_;
  const Clock::time_point changed_at = Clock::now();
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
  outcome.latency_ms = msSince(changed_at);
  return outcome;
}

StatusOr<ApplyOutcome> Manager::registerReplica(const ReplicaRegistration& replica) {
  return change([&]() -> Status {
    if (Status st = validateName("replica id", replica.replica_id); !st.ok()) {
      return st;
    }
    const ApplicationSpec* app = config_->findApplication(replica.application);
    if (app == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("no application named '", replica.application, "' in the config"));
    }
    if (replica.deployment != ingressDeployment(*app).name) {
      return absl::InvalidArgumentError(absl::StrCat(
          "deployment '", replica.deployment, "' is not the ingress deployment of application '",
          app->name, "' (the first one listed, '", ingressDeployment(*app).name,
          "'); only ingress replicas receive HTTP traffic"));
    }
    if (!isIpLiteral(replica.host)) {
      return absl::InvalidArgumentError(
          absl::StrCat("host '", replica.host, "' is not an IPv4 or IPv6 address"));
    }
    if (replica.http_port < 1 || replica.http_port > 65535 || replica.grpc_port < 0 ||
        replica.grpc_port > 65535) {
      return absl::InvalidArgumentError("ports must be in [1, 65535] (grpc_port 0 = none)");
    }
    for (const auto& [id, other] : replicas_) {
      if (id != replica.replica_id && other.host == replica.host &&
          other.http_port == replica.http_port) {
        return absl::AlreadyExistsError(absl::StrCat("replica '", id, "' already registered ",
                                                     replica.host, ":", replica.http_port));
      }
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
    if (reload_pending_since_.has_value()) {
      const auto due = *reload_pending_since_ +
                       std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(options_.env.broadcast_coalesce_s));
      wait = std::min(wait, std::chrono::duration<double>(due - Clock::now()));
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

void Manager::publish(std::uint64_t generation, Result result) {
  std::lock_guard<std::mutex> lock(mu_);
  running_snapshot_ = running_;
  saveState();
  if (generation <= applied_generation_ && result.status.ok()) {
    return;
  }
  for (auto it = change_times_.begin(); it != change_times_.end() && it->first <= generation;) {
    metrics_.propagation_ms.observe(msSince(it->second));
    it = change_times_.erase(it);
  }
  results_[generation] = std::move(result);
  applied_generation_ = std::max(applied_generation_, generation);
  while (results_.size() > 64) {
    results_.erase(results_.begin());
  }
  applied_cv_.notify_all();
}

void Manager::iterate() {
  restartIfDead();
  checkReplicaProcesses();
  const std::set<SlotRef> idle = idleDrainingSlots();

  Inputs in;
  {
    std::lock_guard<std::mutex> lock(mu_);
    in.config = config_;
    for (const auto& [id, replica] : replicas_) {
      in.replicas.push_back(replica);
    }
    in.draining = draining_;
    in.generation = generation_;
  }
  DesiredInputs inputs;
  inputs.config = in.config.get();
  inputs.global = globalSettings(options_.env, *in.config);
  inputs.min_server_slots = options_.env.min_server_slots;
  inputs.replicas = in.replicas;
  inputs.idle_draining_slots = idle;
  inputs.draining = in.draining;
  const RoutingTable desired = buildDesired(inputs, running_);
  Plan plan = diff(running_, desired);

  if (plan.empty()) {
    ApplyOutcome none;
    none.action = "none";
    reload_pending_since_.reset();
    publish(in.generation, Result{absl::OkStatus(), none});
    // Comparing costs HAProxy four admin-socket sessions; once a second finds a hand edit soon
    // enough (reloads and restarts check at once).
    if (const Clock::time_point now = Clock::now(); now - last_drift_check_ >= kDriftCheckPeriod) {
      last_drift_check_ = now;
      repairDrift();
    }
    return;
  }
  if (!plan.needsReload()) {
    Status st = applyRuntime(plan.commands);
    if (st.ok()) {
      const Clock::time_point now = Clock::now();
      for (const Backend& backend : desired.backends) {
        for (std::size_t i = 0; i < backend.slots.size(); ++i) {
          const SlotRef ref{backend.application, i};
          if (backend.slots[i].state == SlotState::kDraining) {
            drain_started_.try_emplace(ref, now);
          } else {
            drain_started_.erase(ref);
          }
        }
      }
      running_ = desired;
      // The files on disk follow every runtime change, and so does the copy a restart or a
      // refused candidate falls back to: only server lines changed, in a structure HAProxy has
      // validated. (Keeping the copy from the last reload made a restarted HAProxy come up with
      // that reload's slots: 503s until drift repair, found by scripts/soak.sh.)
      if (StatusOr<Templates> t = loadTemplates(); t.ok()) {
        if (StatusOr<RenderedConfig> r = render(withDrainingFreed(running_), *t); r.ok()) {
          writeFiles(*r, options_.env.config_file).IgnoreError();
          last_good_ = *std::move(r);
        }
      }
      updateSlotMetrics();
      ApplyOutcome outcome;
      outcome.action = "runtime";
      outcome.commands = plan.commands;
      publish(in.generation, Result{absl::OkStatus(), outcome});
      return;
    }
    spdlog::warn("haproxy-manager: runtime commands failed, reloading instead: {}", messageOf(st));
    plan.reload_reasons = {{"runtime_error", "runtime commands failed: " + messageOf(st)}};
    plan.commands.clear();
    reload_pending_since_ = Clock::now() - std::chrono::hours(1);  // no coalescing: repair now
  }

  if (failed_desired_.has_value() && *failed_desired_ == desired &&
      failed_generation_ == in.generation) {
    return;  // this exact table already failed; wait for the next change before retrying
  }
  if (!reload_pending_since_.has_value()) {
    reload_pending_since_ = Clock::now();
  }
  const auto window = std::chrono::duration<double>(options_.env.broadcast_coalesce_s);
  if (Clock::now() - *reload_pending_since_ < window) {
    return;  // coalescing: the loop comes back when the window closes
  }
  reload_pending_since_.reset();
  Status st = reload(desired, plan.reload_reasons);
  std::vector<std::string> reasons;
  for (const ReloadReason& reason : plan.reload_reasons) {
    reasons.push_back(reason.text);
  }
  if (!st.ok()) {
    failed_desired_ = desired;
    failed_generation_ = in.generation;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (config_ == in.config && in.config != applied_config_) {
        config_ = applied_config_;  // a refused deploy leaves the previous config in force
      }
    }
    publish(in.generation, Result{st, {}});
    return;
  }
  failed_desired_.reset();
  {
    std::lock_guard<std::mutex> lock(mu_);
    applied_config_ = in.config;
  }
  ApplyOutcome outcome;
  outcome.action = "reload";
  outcome.reasons = reasons;
  publish(in.generation, Result{absl::OkStatus(), outcome});
}

Status Manager::applyRuntime(const std::vector<std::string>& commands) {
  AdminSocketClient admin(options_.env.socket_path, std::chrono::seconds(5));
  Status st = applyCommands(admin, commands);
  std::map<std::string, double> kinds;
  for (const std::string& command : commands) {
    kinds[commandKind(command)] += 1;
  }
  for (const auto& [kind, n] : kinds) {
    metrics_.recordRuntimeCommands(kind, st.ok() ? "ok" : "error", n);
  }
  if (st.ok()) {
    spdlog::debug("haproxy-manager: applied {}", absl::StrJoin(commands, "; "));
  }
  return st;
}

Status Manager::reload(const RoutingTable& desired, const std::vector<ReloadReason>& reasons) {
  const Clock::time_point started = Clock::now();
  std::vector<std::string> texts;
  for (const ReloadReason& reason : reasons) {
    texts.push_back(reason.text);
  }
  const std::string why = absl::StrJoin(texts, "; ");
  auto count = [&](const char* result) {
    for (const ReloadReason& reason : reasons) {
      metrics_.recordReload(reason.kind, result);
    }
  };

  StatusOr<Templates> templates = loadTemplates();
  if (!templates.ok()) {
    count("invalid");
    return templates.status();
  }
  StatusOr<RenderedConfig> rendered = render(desired, *templates);
  if (!rendered.ok()) {
    count("invalid");
    return rendered.status();
  }
  if (options_.candidate_hook) {
    options_.candidate_hook(rendered->config);
  }
  const std::string& config_file = options_.env.config_file;
  const std::string candidate = config_file + ".candidate";
  if (Status st = writeFiles(*rendered, candidate); !st.ok()) {
    writeFiles(last_good_, config_file).IgnoreError();
    count("failed");
    return st;
  }
  if (Status st = haproxy_->validate(candidate); !st.ok()) {
    writeFiles(last_good_, config_file).IgnoreError();  // maps back to what is running
    std::remove(candidate.c_str());
    count("invalid");
    spdlog::error(
        "haproxy-manager: candidate config refused by haproxy -c ({}); keeping the "
        "running config: {}",
        why, messageOf(st));
    return absl::InvalidArgumentError(
        absl::StrCat("the new HAProxy config was refused by haproxy -c; the running config is "
                     "unchanged. ",
                     messageOf(st)));
  }
  // Carry health and admin state into the new worker.
  AdminSocketClient admin(options_.env.socket_path, std::chrono::seconds(5));
  if (StatusOr<std::string> state = admin.execute("show servers state"); state.ok()) {
    writeFileAtomic(statePath(desired.global, kServerStateFile), *state).IgnoreError();
  }
  if (::rename(candidate.c_str(), config_file.c_str()) != 0) {
    count("failed");
    return absl::InternalError(
        absl::StrCat("cannot install ", config_file, ": ", std::strerror(errno)));
  }
  StatusOr<ReloadOutcome> outcome = haproxy_->reload();
  if (!outcome.ok()) {
    writeFiles(last_good_, config_file).IgnoreError();
    count("failed");
    spdlog::error("haproxy-manager: reload failed ({}); HAProxy keeps the previous config: {}", why,
                  messageOf(outcome.status()));
    return absl::InternalError(
        absl::StrCat("HAProxy reload failed; it keeps serving the previous config. ",
                     messageOf(outcome.status())));
  }
  running_ = withDrainingFreed(desired);
  for (auto it = drain_started_.begin(); it != drain_started_.end();) {
    it = drain_started_.erase(it);
  }
  last_good_ = *rendered;
  ++reloads_;
  count("success");
  metrics_.reload_ms.observe(msSince(started));
  spdlog::info(
      "haproxy-manager: reloaded HAProxy in {:.0f} ms (worker {} -> {}, takeover {} ms): {}",
      msSince(started), outcome->old_worker_pid, outcome->new_worker_pid, outcome->duration.count(),
      why);
  updateSlotMetrics();
  repairDrift();  // the state file may carry admin states from the old assignments
  return absl::OkStatus();
}

std::set<SlotRef> Manager::idleDrainingSlots() {
  std::set<SlotRef> idle;
  if (drain_started_.empty()) {
    return idle;
  }
  const Clock::time_point sampled_at = Clock::now();
  AdminSocketClient admin(options_.env.socket_path, std::chrono::seconds(2));
  StatusOr<std::string> csv = admin.execute("show stat");
  if (!csv.ok()) {
    return idle;
  }
  StatusOr<std::vector<StatRow>> rows = parseShowStat(*csv);
  if (!rows.ok()) {
    return idle;
  }
  for (const auto& [ref, since] : drain_started_) {
    if (since >= sampled_at) {
      continue;
    }
    const Backend* backend = running_.findBackend(ref.first);
    if (backend == nullptr) {
      continue;
    }
    // Idle on both protocols: the HTTP server is listed, and no server of the slot has a
    // request in progress or queued.
    const std::string http = backendName(*backend);
    const std::string grpc = grpcBackendName(*backend);
    const std::string server = slotName(ref.second);
    bool listed = false;
    bool busy = false;
    for (const StatRow& row : *rows) {
      if ((row.proxy == http || row.proxy == grpc) && row.server == server) {
        listed = listed || row.proxy == http;
        busy = busy || row.scur != 0 || row.qcur != 0;
      }
    }
    if (listed && !busy) {
      idle.insert(ref);
    }
  }
  return idle;
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

void Manager::repairDrift() {
  AdminSocketClient admin(options_.env.socket_path, std::chrono::seconds(2));
  StatusOr<std::string> state = admin.execute("show servers state");
  if (!state.ok()) {
    return;
  }
  StatusOr<std::vector<ServerStateRow>> rows = parseServersState(*state);
  if (!rows.ok()) {
    spdlog::warn("haproxy-manager: cannot parse show servers state: {}", messageOf(rows.status()));
    return;
  }
  std::vector<ObservedServer> servers;
  for (const ServerStateRow& row : *rows) {
    servers.push_back(
        {row.backend, row.server, row.addr, row.port, row.inMaintenance(), row.draining()});
  }
  ObservedMaps maps;
  for (const char* file : {kRoutesExactMap, kModelsMap, kNodeMap}) {
    const std::string path = statePath(running_.global, file);
    StatusOr<std::string> text = admin.execute("show map " + path);
    if (!text.ok()) {
      continue;
    }
    StatusOr<std::vector<MapEntry>> entries = parseShowMap(*text);
    if (!entries.ok()) {
      continue;
    }
    auto& out = maps[path];
    for (const MapEntry& entry : *entries) {
      out.emplace_back(entry.key, entry.value);
    }
  }
  const RoutingTable observed = observedTable(running_, servers, maps);
  if (observed == running_) {
    return;
  }
  const Plan repair = diff(observed, running_);
  if (repair.commands.empty()) {
    return;
  }
  // One repair per slot or map entry that differs, however many commands it takes.
  int repairs = observed.draining != running_.draining ? 1 : 0;
  for (std::size_t b = 0; b < running_.backends.size(); ++b) {
    const Backend& want = running_.backends[b];
    const Backend& seen = observed.backends[b];
    repairs += want.route_prefix != seen.route_prefix ? 1 : 0;
    repairs += want.model_name != seen.model_name ? 1 : 0;
    for (std::size_t i = 0; i < want.slots.size(); ++i) {
      repairs += slotCommands(backendName(want), i, seen.slots[i], want.slots[i]).empty() ? 0 : 1;
      if (running_.global.grpc_port > 0) {
        repairs += slotCommands(grpcBackendName(want), i, grpcSlot(seen.slots[i]),
                                grpcSlot(want.slots[i]), Health::kTracked)
                           .empty()
                       ? 0
                       : 1;
      }
    }
  }
  spdlog::warn("haproxy-manager: HAProxy drifted from the routing table ({} repair(s)): {}",
               repairs, absl::StrJoin(repair.commands, "; "));
  metrics_.drift_repairs.inc(repairs);
  applyRuntime(repair.commands).IgnoreError();
}

void Manager::restartIfDead() {
  if (haproxy_->masterAlive()) {
    // `show proc` goes through the master; once a second is plenty for a gauge, and keeps the
    // master CLI out of the path of changes.
    const Clock::time_point now = Clock::now();
    if (now - last_proc_check_ >= std::chrono::seconds(1)) {
      last_proc_check_ = now;
      if (StatusOr<int> old = haproxy_->oldWorkerCount(); old.ok()) {
        metrics_.old_workers.set(*old);
      }
    }
    return;
  }
  spdlog::error("haproxy-manager: the HAProxy master died; starting it again");
  metrics_.restarts.inc();
  // Start from the table as it is now (what drained is freed: its connections died with the
  // master), so the new HAProxy routes at once instead of waiting for drift repair.
  running_ = withDrainingFreed(running_);
  drain_started_.clear();
  if (StatusOr<Templates> t = loadTemplates(); t.ok()) {
    if (StatusOr<RenderedConfig> r = render(running_, *t); r.ok()) {
      last_good_ = *std::move(r);
    }
  }
  writeFiles(last_good_, options_.env.config_file).IgnoreError();
  if (Status st = haproxy_->restart(); !st.ok()) {
    metrics_.recordReload("restart", "failed");
    spdlog::error("haproxy-manager: restarting HAProxy failed: {}", messageOf(st));
    return;
  }
  metrics_.recordReload("restart", "success");
  repairDrift();
}

void Manager::updateSlotMetrics() {
  for (const Backend& backend : running_.backends) {
    std::map<std::string, double> counts{{"free", 0}, {"active", 0}, {"draining", 0}};
    for (const Slot& slot : backend.slots) {
      counts[slotStateName(slot.state)] += 1;
    }
    for (const auto& [state, n] : counts) {
      metrics_.setSlots(backendName(backend), state, n);
    }
  }
}

nlohmann::json Manager::status() const {
  // Requests in progress on the HTTP frontend (its own admin-socket connection: the loop's
  // HAProxy calls are not shared). -1 when HAProxy does not answer.
  long long in_flight = -1;
  AdminSocketClient admin(options_.env.socket_path, std::chrono::seconds(2));
  if (StatusOr<std::string> csv = admin.execute("show stat"); csv.ok()) {
    if (StatusOr<std::vector<StatRow>> rows = parseShowStat(*csv); rows.ok()) {
      for (const StatRow& row : *rows) {
        if (row.proxy == "http" && row.kind == StatKind::kFrontend) {
          in_flight = row.scur;
        }
      }
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::json apps = nlohmann::json::array();
  const bool grpc = running_snapshot_.global.grpc_port > 0;
  for (const Backend& backend : running_snapshot_.backends) {
    nlohmann::json slots = nlohmann::json::array();
    for (std::size_t i = 0; i < backend.slots.size(); ++i) {
      const Slot& slot = backend.slots[i];
      if (slot.state == SlotState::kFree) {
        continue;
      }
      nlohmann::json entry = {{"slot", slotName(i)},
                              {"state", slotStateName(slot.state)},
                              {"replica_id", slot.replica_id},
                              {"address", serverAddress(slot)}};
      if (grpc) {
        const Slot view = grpcSlot(slot);
        entry["grpc_address"] = view.state == SlotState::kFree ? "" : serverAddress(view);
      }
      slots.push_back(std::move(entry));
    }
    nlohmann::json app = {
        {"name", backend.application},           {"route_prefix", backend.route_prefix},
        {"model", backend.model_name},           {"backend", backendName(backend)},
        {"slot_capacity", backend.slots.size()}, {"slots", slots}};
    if (grpc) {
      app["grpc_backend"] = grpcBackendName(backend);
    }
    apps.push_back(std::move(app));
  }
  const nlohmann::json replicas = registrationsJson(replicas_);
  return {{"haproxy", {{"master_pid", haproxy_->masterPid()}}},
          {"config", config_->source},
          {"draining", draining_},
          {"in_flight", in_flight},
          {"generation", generation_},
          {"applied_generation", applied_generation_},
          {"applications", apps},
          {"replicas", replicas}};
}

// Under mu_.
void Manager::saveState() {
  const nlohmann::json replicas = registrationsJson(replicas_);
  const std::string text =
      nlohmann::json{{"haproxy_master_pid", haproxy_->masterPid()}, {"replicas", replicas}}.dump();
  if (text == saved_state_) {
    return;
  }
  const std::string path = statePath(running_snapshot_.global, kManagerStateFile);
  if (writeFileAtomic(path, text + "\n").ok()) {
    saved_state_ = text;
  }
}

StatusOr<bool> Manager::tryAdopt() {
  const GlobalSettings global = globalSettings(options_.env, *config_);
  StatusOr<std::string> text = readWholeFile(statePath(global, kManagerStateFile), "manager state");
  if (!text.ok()) {
    return false;
  }
  nlohmann::json state = nlohmann::json::parse(*text, nullptr, false);
  if (state.is_discarded() || !state.contains("haproxy_master_pid")) {
    return false;
  }
  if (Status st = haproxy_->adopt(state["haproxy_master_pid"].get<int>()); !st.ok()) {
    return st;
  }
  // Registrations whose process is still there.
  for (const auto& r : state["replicas"]) {
    ReplicaRegistration reg;
    reg.replica_id = r.value("replica_id", "");
    reg.application = r.value("application", "");
    reg.deployment = r.value("deployment", "");
    reg.host = r.value("host", "127.0.0.1");
    reg.http_port = r.value("http_port", 0);
    reg.grpc_port = r.value("grpc_port", 0);
    reg.pid = r.value("pid", 0);
    if (reg.pid > 0 && ::kill(reg.pid, 0) != 0 && errno == ESRCH) {
      continue;
    }
    replicas_[reg.replica_id] = reg;
  }
  // What HAProxy runs now is the running table: same capacity, the replicas where they are.
  DesiredInputs inputs;
  inputs.config = config_.get();
  inputs.global = global;
  inputs.min_server_slots = options_.env.min_server_slots;
  RoutingTable base = buildDesired(inputs, RoutingTable{});
  AdminSocketClient admin(options_.env.socket_path, std::chrono::seconds(5));
  StatusOr<std::string> servers_text = admin.execute("show servers state");
  StatusOr<std::vector<ServerStateRow>> rows =
      servers_text.ok() ? parseServersState(*servers_text)
                        : StatusOr<std::vector<ServerStateRow>>(servers_text.status());
  if (!rows.ok()) {
    return rows.status();
  }
  std::vector<ObservedServer> servers;
  std::map<std::string, std::size_t> capacity;
  for (const ServerStateRow& row : *rows) {
    servers.push_back(
        {row.backend, row.server, row.addr, row.port, row.inMaintenance(), row.draining()});
    if (row.server.rfind("slot", 0) == 0) {
      capacity[row.backend] += 1;
    }
  }
  for (Backend& backend : base.backends) {
    if (auto it = capacity.find(backendName(backend)); it != capacity.end()) {
      backend.slots.resize(it->second);
    }
  }
  RoutingTable observed = observedTable(base, servers, ObservedMaps{});
  for (Backend& backend : observed.backends) {
    for (Slot& slot : backend.slots) {
      for (const auto& [id, reg] : replicas_) {
        if (slot.state != SlotState::kFree && slot.endpoint.host == reg.host &&
            slot.endpoint.port == reg.http_port) {
          slot.replica_id = id;
        }
      }
    }
  }
  running_ = observed;
  if (StatusOr<Templates> t = loadTemplates(); t.ok()) {
    if (StatusOr<RenderedConfig> r = render(withDrainingFreed(running_), *t); r.ok()) {
      last_good_ = *r;
    }
  }
  running_snapshot_ = running_;
  metrics_.replicas.set(static_cast<double>(replicas_.size()));
  updateSlotMetrics();
  spdlog::info(
      "haproxy-manager: adopted HAProxy master {} and {} replica registration(s) left "
      "by an earlier manager",
      haproxy_->masterPid(), replicas_.size());
  return true;
}

bool Manager::slotReleased(const std::string& replica_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (replicas_.count(replica_id) > 0) {
    return false;
  }
  for (const Backend& backend : running_snapshot_.backends) {
    for (const Slot& slot : backend.slots) {
      if (slot.state != SlotState::kFree && slot.replica_id == replica_id) {
        return false;
      }
    }
  }
  return true;
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
