// The Manager's lifecycle: creating it with the real HAProxy controller, starting HAProxy (fresh,
// or by adopting an earlier manager's), stopping it, and quiescing the frontends before a node
// stops. The change queue and the control loop are in manager.cc.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "haproxy-manager/haproxy/haproxy_process.h"
#include "haproxy-manager/haproxy/show_parsers.h"
#include "haproxy-manager/reconcile/applier.h"
#include "haproxy-manager/reconcile/global_settings.h"
#include "haproxy-manager/reconcile/manager.h"
#include "haproxy-manager/reconcile/registrations.h"
#include "haproxy-manager/reconcile/status_view.h"
#include "spdlog/spdlog.h"

namespace serve::manager {
namespace {

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

ReconcilerSettings reconcilerSettings(const ManagerEnv& env) {
  ReconcilerSettings settings;
  settings.coalesce = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(env.broadcast_coalesce_s));
  return settings;
}

bool processGone(int pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// The admin socket, the control token and HAProxy's files live in these directories: one
// someone else can write to would let them replace those.
Status checkStateDirectories(const ManagerEnv& env) {
  for (const auto& [path, variable] :
       {std::pair{env.config_file, "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"},
        std::pair{env.socket_path, "RAY_SERVE_HAPROXY_SOCKET_PATH"}}) {
    const auto dir = std::filesystem::path(path).parent_path();
    if (dir.empty()) {
      continue;
    }
    if (Status st = ensurePrivateDirectory(
            dir.string(), absl::StrCat("use a directory of this user's, e.g. set ", variable,
                                       " to a path inside one"));
        !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

}  // namespace

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
  auto admin = std::make_unique<AdminSocketClient>(options.env.socket_path);
  return std::make_unique<Manager>(std::move(options), std::move(config), *std::move(controller),
                                   std::move(admin));
}

Manager::Manager(ManagerOptions options, ServeConfig config,
                 std::unique_ptr<ProcessControl> haproxy, std::unique_ptr<RuntimeApi> admin,
                 const Clock& clock)
    : options_(std::move(options)),
      clock_(clock),
      haproxy_(std::move(haproxy)),
      admin_(std::move(admin)),
      config_(std::make_shared<const ServeConfig>(std::move(config))),
      applied_config_(config_),
      reconciler_(reconcilerSettings(options_.env)),
      files_(options_.env.config_file, options_.template_dir) {}

Manager::~Manager() { stop(); }

ReloadParts Manager::reloadParts() { return {*haproxy_, *admin_, files_, metrics_, clock_}; }

Status Manager::start() {
  const ManagerEnv& env = options_.env;
  if (Status st = checkStateDirectories(env); !st.ok()) {
    return st;
  }
  std::error_code ec;
  std::filesystem::create_directories(env.log_dir, ec);
  // Bound before HAProxy starts (or is adopted), so its first log line has a reader.
  const GlobalSettings global = globalSettings(env, *config_);
  if (!global.ingress_log_socket.empty()) {
    ingress_receiver_ =
        std::make_unique<IngressLogReceiver>(global.ingress_log_socket, ingress_metrics_);
    if (Status st = ingress_receiver_->start(); !st.ok()) {
      return st;
    }
  }
  // Never fight another HAProxy over the same socket and files; adopt our own.
  if (StatusOr<std::string> answer = admin_->execute("show info"); answer.ok()) {
    StatusOr<bool> adopted = tryAdopt();
    if (!adopted.ok() || !*adopted) {
      StatusOr<ShowInfo> info = parseShowInfo(*answer);
      return absl::FailedPreconditionError(absl::StrCat(
          "an HAProxy (pid ", info.ok() ? std::to_string(info->pid) : std::string("unknown"),
          ") already answers on ", env.socket_path, " and cannot be adopted (",
          adopted.ok() ? "no usable state file of an earlier manager names it"
                       : messageOf(adopted.status()),
          "); stop it or set RAY_SERVE_HAPROXY_SOCKET_PATH and RAY_SERVE_HAPROXY_CONFIG_FILE_LOC "
          "to another directory"));
    }
    adopted_ = true;
  } else if (Status st = startFresh(); !st.ok()) {
    return st;
  }
  started_ = true;
  loop_thread_ = std::thread([this] { loop(); });
  return absl::OkStatus();
}

Status Manager::startFresh() {
  DesiredInputs inputs;
  inputs.config = config_.get();
  inputs.global = globalSettings(options_.env, *config_);
  inputs.min_server_slots = options_.env.min_server_slots;
  const RoutingTable desired = buildDesired(inputs, RoutingTable{});
  StatusOr<RenderedConfig> rendered = files_.render(desired);
  if (!rendered.ok()) {
    return rendered.status();
  }
  if (Status st = files_.write(*rendered, files_.configPath()); !st.ok()) {
    return st;
  }
  // HAProxy's load-server-state-from-file wants the file to exist.
  const std::string state_file = statePath(desired.global, kServerStateFile);
  if (!std::filesystem::exists(state_file)) {
    writePrivateFileAtomically(state_file, "1\n", "server state file").IgnoreError();
  }
  if (Status st = haproxy_->start(); !st.ok()) {
    return st;
  }
  files_.setLastGood(*std::move(rendered));
  reconciler_.startedWith(desired);
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_snapshot_ = desired;
  }
  updateSlotMetrics(desired, metrics_);
  spdlog::info("haproxy-manager: HAProxy master {} serving {} application(s); config {}",
               haproxy_->masterPid(), desired.backends.size(), files_.configPath());
  return absl::OkStatus();
}

StatusOr<bool> Manager::tryAdopt() {
  const GlobalSettings global = globalSettings(options_.env, *config_);
  const std::string path = statePath(global, kManagerStateFile);
  StatusOr<std::string> text = readWholeFile(path, "manager state");
  if (!text.ok()) {
    return false;
  }
  StatusOr<ManagerState> state = parseManagerState(*text, path);
  if (!state.ok()) {
    spdlog::warn("haproxy-manager: ignoring the earlier manager's state: {}",
                 messageOf(state.status()));
    return false;
  }
  if (Status st = haproxy_->adopt(state->haproxy_master_pid); !st.ok()) {
    return st;
  }
  const std::vector<ReplicaRegistration> live =
      liveRegistrations(state->replicas, [](int pid) { return !processGone(pid); });
  StatusOr<std::vector<ServerStateRow>> servers = showServersState(*admin_);
  if (!servers.ok()) {
    return servers.status();
  }
  // What HAProxy runs now is the running table: same capacity, the replicas where they are.
  DesiredInputs inputs;
  inputs.config = config_.get();
  inputs.global = global;
  inputs.min_server_slots = options_.env.min_server_slots;
  const RoutingTable table = adoptedTable(buildDesired(inputs, RoutingTable{}), *servers, live);
  reconciler_.startedWith(table);
  files_.follow(table).IgnoreError();
  std::lock_guard<std::mutex> lock(mu_);
  for (const ReplicaRegistration& reg : live) {
    replicas_[reg.replica_id] = reg;
  }
  running_snapshot_ = table;
  metrics_.replicas.set(static_cast<double>(replicas_.size()));
  updateSlotMetrics(table, metrics_);
  spdlog::info(
      "haproxy-manager: adopted HAProxy master {} and {} replica registration(s) left by an "
      "earlier manager",
      haproxy_->masterPid(), replicas_.size());
  return true;
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
  const int64_t busy = quiesceFrontends(
      *admin_, grpc, std::chrono::milliseconds(static_cast<int64_t>(grace_s * 1000)));
  if (busy != 0) {
    spdlog::warn(
        "haproxy-manager: {} request(s) still queued or in progress after {} s; stopping the "
        "replicas anyway",
        busy, grace_s);
  }
  return busy;
}

}  // namespace serve::manager
