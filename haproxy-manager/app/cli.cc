#include "haproxy-manager/app/cli.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/crash_point.h"
#include "common/env_settings.h"
#include "common/file_util.h"
#include "common/serve_config.h"
#include "haproxy-manager/app/manager_registry.h"
#include "haproxy-manager/app/node_ports.h"
#include "haproxy-manager/control/control_client.h"
#include "haproxy-manager/control/control_server.h"
#include "haproxy-manager/model/manager_env.h"
#include "haproxy-manager/reconcile/in_force_store.h"
#include "haproxy-manager/reconcile/manager.h"
#include "haproxy-manager/supervise/gpus.h"
#include "haproxy-manager/supervise/replica_supervisor.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace serve::manager {

namespace {

constexpr char kDescription[] =
    R"(haproxy-manager: runs one HAProxy for a serving node and keeps it equal to
the routing table (serve config + registered replicas).)";

constexpr char kFooter[] =
    R"(The subcommands find the manager through the same RAY_SERVE_* variables as `start`
(RAY_SERVE_HAPROXY_CONTROL_PORT, and RAY_SERVE_HAPROXY_CONFIG_FILE_LOC for the control token
beside haproxy.cfg). Every variable is listed in docs/configuration.md.
`haproxy-manager SUBCOMMAND --help` describes each subcommand's flags.)";

int usageError(const std::string& message, const std::string& command = "") {
  const std::string prog = command.empty() ? "haproxy-manager" : "haproxy-manager " + command;
  std::cerr << prog << ": " << message << "\nRun `" << prog << " --help` for usage.\n";
  return 2;
}

// The command line: one subcommand and its arguments.
struct Args {
  std::string command;  // start, status, routes, deploy, drain, register or deregister
  // start
  std::string config;
  std::optional<std::string> template_dir;
  bool no_replicas = false;
  // deploy FILE
  std::string file;
  // drain
  std::optional<double> timeout_s;
  bool undo = false;
  // register (and deregister ID)
  std::string app;
  std::string deployment;
  std::string host = "127.0.0.1";
  std::string replica_id;
  int port = 0;
  std::optional<int> grpc_port;
  std::optional<int> pid;
};

// The subcommands and their flags, bound to `out`.
void defineCommands(CLI::App& app, Args* out) {
  app.require_subcommand(1);
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.get_formatter()->column_width(30);

  CLI::App* start =
      app.add_subcommand("start",
                         "Run in the foreground: render haproxy.cfg, start HAProxy (master-\n"
                         "worker), start num_replicas serve-replica processes per application\n"
                         "and put them into HAProxy as they become ready, serve the control\n"
                         "API on 127.0.0.1:$RAY_SERVE_HAPROXY_CONTROL_PORT (8405).\n"
                         "SIGTERM/SIGINT drain and stop the replicas, then HAProxy; SIGHUP\n"
                         "re-reads FILE and deploys it.");
  start->add_option("--config", out->config, "the serve config (YAML) to run")
      ->type_name("FILE")
      ->required()
      ->check(cli::nonEmpty());
  start
      ->add_option_function<std::string>(
          "--template-dir", [out](const std::string& dir) { out->template_dir = dir; },
          "where haproxy.cfg.mustache is (default: installed next to the\n"
          "binary, else the source tree's templates/)")
      ->type_name("DIR");
  start->add_flag("--no-replicas", out->no_replicas,
                  "run no replicas; they are started elsewhere and registered");

  app.add_subcommand("status", "Manager, HAProxy and slot state (JSON).");
  app.add_subcommand("routes", "Route prefix -> application (JSON).");

  CLI::App* deploy =
      app.add_subcommand("deploy",
                         "Apply a changed serve config; prints what it took (runtime\n"
                         "commands, or a validated reload and why).");
  deploy->add_option("FILE", out->file, "the serve config (YAML)")->required();

  CLI::App* drain =
      app.add_subcommand("drain",
                         "Node drain: :8000/-/healthz answers 503, then wait (up to --timeout\n"
                         "seconds) until no request is in progress and at least\n"
                         "RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S (30) have passed.");
  drain
      ->add_option_function<double>(
          "--timeout", [out](double s) { out->timeout_s = s; },
          "seconds to wait, >= 0 (default: the larger of 60 and the\n"
          "draining period + 30)")
      ->type_name("S")
      ->check(cli::numberIn(0));
  drain->add_flag("--undo", out->undo, "end the drain");

  CLI::App* reg =
      app.add_subcommand("register", "Put a running replica into its application's backend.");
  reg->add_option("--app", out->app, "its application")
      ->type_name("NAME")
      ->required()
      ->check(cli::nonEmpty());
  reg->add_option("--deployment", out->deployment, "its deployment")
      ->type_name("NAME")
      ->required()
      ->check(cli::nonEmpty());
  reg->add_option("--port", out->port, "its HTTP port, 1-65535")
      ->type_name("N")
      ->required()
      ->transform(cli::integerIn(1, 65535));
  reg->add_option("--host", out->host, "its address (default 127.0.0.1)")->type_name("IP");
  reg->add_option_function<int>(
         "--grpc-port", [out](int port) { out->grpc_port = port; },
         "its gRPC port, 0-65535 (0 or absent: none)")
      ->type_name("N")
      ->transform(cli::integerIn(0, 65535));
  reg->add_option("--id", out->replica_id, "the replica's ID (default APP-PORT)")->type_name("ID");
  reg->add_option_function<int>(
         "--pid", [out](int pid) { out->pid = pid; },
         "its process ID, for the manager's liveness check")
      ->type_name("PID")
      ->transform(cli::integerIn(1, std::numeric_limits<int>::max()));

  CLI::App* deregister =
      app.add_subcommand("deregister", "Drain a replica's slot and free it once idle.");
  deregister->add_option("ID", out->replica_id, "the replica's ID")->required();
  app.footer(kFooter);  // after the subcommands, which would copy it
}

// Parses the command line into `out`. Returns the exit code when there is nothing to run:
// 0 after printing the help, 2 after a usage error.
std::optional<int> parseArgs(const std::vector<std::string>& args, Args* out) {
  CLI::App app(kDescription, "haproxy-manager");
  defineCommands(app, out);
  if (args.empty() || args[0] == "help") {
    std::cout << app.help();
    return args.empty() ? 2 : 0;
  }
  const cli::ParseResult parsed = cli::parse(app, args);
  const std::vector<CLI::App*> chosen = app.get_subcommands();
  if (parsed.help) {
    std::cout << app.help();
    return 0;
  }
  if (!parsed.ok()) {
    if (chosen.empty() && !args[0].starts_with("-")) {
      return usageError(absl::StrCat("unknown command '", args[0], "'"));
    }
    return usageError(parsed.error, chosen.empty() ? "" : chosen.front()->get_name());
  }
  out->command = chosen.front()->get_name();
  if (out->command == "register" && out->replica_id.empty()) {
    out->replica_id = absl::StrCat(out->app, "-", out->port);
  }
  return std::nullopt;
}

std::string tokenPath(const ManagerEnv& env) {
  const auto dir = std::filesystem::path(env.config_file).parent_path();
  return ((dir.empty() ? std::filesystem::path(".") : dir) / kControlTokenFile).string();
}

std::string defaultTemplateDir() {
  // Next to the binary when installed (the Docker image), else the source tree's templates/.
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto installed = exe.parent_path().parent_path() / "share/haproxy-serve/templates";
    if (std::filesystem::exists(installed / "haproxy.cfg.mustache")) {
      return installed.string();
    }
  }
  return SERVE_SOURCE_TEMPLATE_DIR;
}

std::filesystem::path exeDir() {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
}

// serve-replica: $SERVE_REPLICA_BINARY, else next to this binary (installed), else the build
// tree's replica/ directory, else PATH.
StatusOr<std::string> replicaBinary() {
  if (const char* explicit_path = std::getenv("SERVE_REPLICA_BINARY"); explicit_path != nullptr) {
    if (::access(explicit_path, X_OK) != 0) {
      return absl::NotFoundError(
          absl::StrCat("SERVE_REPLICA_BINARY=", explicit_path, " is not an executable file"));
    }
    return std::string(explicit_path);
  }
  const std::filesystem::path dir = exeDir();
  for (const auto& candidate :
       {dir / "serve-replica", dir.parent_path() / "replica/serve-replica"}) {
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate.string();
    }
  }
  return absl::NotFoundError(
      "cannot find serve-replica next to haproxy-manager; set SERVE_REPLICA_BINARY");
}

// Everything a node can check before it changes anything: model files exist (relative paths
// resolve against `base_dir`), CPUs and GPUs suffice.
Status checkForNode(const ServeConfig& config, const std::string& base_dir, int gpu_count) {
  const std::filesystem::path dir(base_dir);
  for (const ApplicationSpec& app : config.applications) {
    const DeploymentSpec& d = app.deployments.front();
    if (d.model.kind != "mlp") {
      continue;
    }
    std::filesystem::path path = d.model.path;
    if (path.is_relative()) {
      path = dir / path;
    }
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      return absl::InvalidArgumentError(absl::StrCat(
          config.source, ":", d.line, ": applications.", app.name, ".deployments.", d.name,
          ".model.path: model file ", d.model.path, " not found (looked for ", path.string(), ")"));
    }
  }
  const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (Status st = checkCpuDemand(config, cpus); !st.ok()) {
    return st;
  }
  return checkGpuDemand(config, gpu_count);
}

// Writes `yaml` to <state_dir>/config-<hash>.yaml (mode 0600, atomically, once per content) and
// returns its path. Replicas read their config from such a snapshot, never from the operator's
// file: an edit there, or a deploy that was refused, cannot reach a replica that restarts later.
StatusOr<std::string> snapshotConfig(const std::string& state_dir, const std::string& yaml) {
  const std::string path =
      absl::StrCat(state_dir.empty() ? "." : state_dir, "/config-",
                   absl::Hex(std::hash<std::string>{}(yaml), absl::kZeroPad16), ".yaml");
  StatusOr<std::string> existing = readWholeFile(path, "config snapshot");
  if (existing.ok() && *existing == yaml) {
    return path;
  }
  if (Status st = writePrivateFileAtomically(path, yaml, "config snapshot"); !st.ok()) {
    return st;
  }
  return path;
}

int runStart(const ManagerEnv& env, const Args& args) {
  const std::string config_path = std::filesystem::absolute(args.config).string();
  const bool supervise = !args.no_replicas;
  // Read once: what is parsed is what the replicas get (a snapshot of these bytes).
  StatusOr<std::string> config_yaml = readWholeFile(config_path, "serve config");
  if (!config_yaml.ok()) {
    std::cerr << "haproxy-manager: " << messageOf(config_yaml.status()) << "\n";
    return 1;
  }
  StatusOr<ServeConfig> config = parseServeConfig(*config_yaml, config_path);
  if (!config.ok()) {
    std::cerr << "haproxy-manager: " << messageOf(config.status()) << "\n";
    return 1;
  }
  const std::string config_dir = std::filesystem::path(config_path).parent_path().string();
  StatusOr<ReplicaEnv> replica_env = readReplicaEnv(processEnv());
  if (!replica_env.ok()) {
    std::cerr << "haproxy-manager: " << messageOf(replica_env.status()) << "\n";
    return 1;
  }
  if (Status st = checkNodePorts(*config, env, *replica_env); !st.ok()) {
    std::cerr << "haproxy-manager: " << messageOf(st) << "\n";
    return 1;
  }
  const int gpu_count = visibleGpuCount();
  std::string replica_binary;
  if (supervise) {
    if (Status st = checkForNode(*config, config_dir, gpu_count); !st.ok()) {
      std::cerr << "haproxy-manager: " << messageOf(st) << "\n";
      return 1;
    }
    StatusOr<std::string> binary = replicaBinary();
    if (!binary.ok()) {
      std::cerr << "haproxy-manager: " << messageOf(binary.status()) << "\n";
      return 1;
    }
    replica_binary = *binary;
  }

  // Signals are taken synchronously by this thread; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ManagerOptions options;
  options.env = env;
  options.template_dir = env.template_dir.empty() ? defaultTemplateDir() : env.template_dir;
  StatusOr<std::unique_ptr<Manager>> manager = Manager::create(options, *config);
  if (!manager.ok()) {
    std::cerr << "haproxy-manager: " << messageOf(manager.status()) << "\n";
    return 1;
  }
  if (Status st = (*manager)->start(); !st.ok()) {
    std::cerr << "haproxy-manager: " << messageOf(st) << "\n";
    return 1;
  }
  StatusOr<std::string> token = writeControlToken(tokenPath(env));
  if (!token.ok()) {
    std::cerr << "haproxy-manager: " << messageOf(token.status()) << "\n";
    (*manager)->stop();
    return 1;
  }
  Manager& m = **manager;
  const std::string state_dir = std::filesystem::path(env.config_file).parent_path().string();
  // The config in force. A fresh node runs its start file. A successor that adopted a running
  // node goes on with the config in force there (started or deployed), not its own file, which
  // a deploy applies.
  InForceStore in_force(state_dir);
  std::string in_force_yaml = *config_yaml;
  std::string in_force_dir = config_dir;
  if (m.adopted()) {
    StatusOr<std::optional<ResumedConfig>> resumed = in_force.resumable(*config_yaml);
    if (!resumed.ok()) {
      spdlog::warn("haproxy-manager: not resuming the node's config in force: {}; running {}",
                   messageOf(resumed.status()), config_path);
    } else if (resumed->has_value()) {
      ResumedConfig& r = **resumed;
      if (StatusOr<ApplyOutcome> applied = m.deploy(r.config); applied.ok()) {
        spdlog::info(
            "haproxy-manager: going on with the config in force on this node ({}), not {}; "
            "`haproxy-manager deploy {}` applies that file",
            r.record.snapshot, config_path, config_path);
        *config = std::move(r.config);
        in_force_yaml = std::move(r.yaml);
        in_force_dir = r.record.base_dir;
      } else {
        spdlog::error(
            "haproxy-manager: the config in force on this node ({}) was refused: {}; "
            "running {}",
            r.record.snapshot, messageOf(applied.status()), config_path);
      }
    }
  }
  StatusOr<std::string> start_snapshot = snapshotConfig(state_dir, in_force_yaml);
  if (!start_snapshot.ok()) {
    std::cerr << "haproxy-manager: " << messageOf(start_snapshot.status()) << "\n";
    (*manager)->stop();
    return 1;
  }
  if (StatusOr<std::optional<std::string>> recorded =
          in_force.replace({std::filesystem::absolute(*start_snapshot).string(), in_force_dir});
      !recorded.ok()) {
    spdlog::warn("haproxy-manager: {}; a successor would run its own start file",
                 messageOf(recorded.status()));
  }
  ManagerRegistry registry(m);  // declared first: outlives the supervisor
  std::unique_ptr<ReplicaSupervisor> supervisor;
  if (supervise) {
    SupervisorOptions so;
    so.replica_binary = replica_binary;
    so.log_dir = env.log_dir;
    {
      // Replicas' control sockets: in a folder only the manager's user may enter.
      const auto dir = std::filesystem::path(env.config_file).parent_path();
      const auto control_dir = (dir.empty() ? std::filesystem::path(".") : dir) / "replica-control";
      if (Status st = ensurePrivateDirectory(control_dir.string(), "remove it"); !st.ok()) {
        spdlog::warn("haproxy-manager: {}; user_config changes will restart replicas",
                     messageOf(st));
      } else {
        so.control_dir = std::filesystem::absolute(control_dir).string();
      }
    }
    so.replica_env = *replica_env;
    so.gpu_count = gpu_count;
    so.port_quarantine =
        std::chrono::milliseconds(static_cast<long long>((env.hard_stop_after_s + 30) * 1000));
    supervisor = std::make_unique<ReplicaSupervisor>(so, registry);
    // Replicas of a manager that died keep running; this one takes them over (their slots
    // were adopted with HAProxy) instead of starting duplicates.
    const auto dir = std::filesystem::path(env.config_file).parent_path();
    const std::string state_file =
        ((dir.empty() ? std::filesystem::path(".") : dir) / "replicas-state.json").string();
    if (!m.adopted()) {
      std::filesystem::remove(state_file);
    }
    supervisor->adopt(state_file);
    supervisor->apply(std::make_shared<const ServeConfig>(*config), *start_snapshot, in_force_dir);
    supervisor->start();
    spdlog::info("haproxy-manager: supervising replicas ({}; {} GPU(s) visible)", replica_binary,
                 gpu_count);
  }
  // A deploy: checks that need the node, then HAProxy, then the replicas. One at a time, so that
  // the in-force record and what HAProxy and the replicas run change in the same order.
  std::mutex deploy_mu;
  auto deploy = [&](ServeConfig next, const std::string& source,
                    const std::string& yaml) -> StatusOr<ApplyOutcome> {
    std::lock_guard<std::mutex> deploying(deploy_mu);
    // Replicas read a snapshot of exactly these bytes; relative paths in it resolve against
    // the folder of the file the deploy named (the state directory for an anonymous one).
    const std::string base_dir = std::filesystem::path(source).is_absolute()
                                     ? std::filesystem::path(source).parent_path().string()
                                     : state_dir;
    armCrashPoints();  // a test hook (common/crash_point.h); nothing unless the environment sets it
    if (supervisor) {
      if (Status st = checkForNode(next, base_dir, gpu_count); !st.ok()) {
        return st;
      }
    }
    StatusOr<std::string> path = snapshotConfig(state_dir, yaml);
    if (!path.ok()) {
      return path.status();
    }
    // In force from here on, for a successor too; put back if HAProxy refuses it.
    StatusOr<std::optional<std::string>> previous =
        in_force.replace({std::filesystem::absolute(*path).string(), base_dir});
    if (!previous.ok()) {
      return previous.status();
    }
    crashPoint("deploy.snapshot_written");
    auto shared = std::make_shared<const ServeConfig>(next);
    StatusOr<ApplyOutcome> outcome = m.deploy(std::move(next));
    if (!outcome.ok()) {
      if (Status st = in_force.restore(*previous); !st.ok()) {
        spdlog::error("haproxy-manager: {}", messageOf(st));
      }
    }
    crashPoint("deploy.routes_applied");  // HAProxy has the new routes; replicas are unchanged
    if (outcome.ok() && supervisor) {
      supervisor->apply(shared, *path, base_dir);
    }
    return outcome;
  };
  ControlHooks hooks;
  hooks.deploy = deploy;
  if (supervisor) {
    hooks.extra_status = [&]() {
      nlohmann::json processes = nlohmann::json::array();
      // Per deployment: "failing" while a replica of it waits to be started again after a
      // failure (its message says why), else "running".
      std::map<std::pair<std::string, std::string>, nlohmann::json> deployments;
      for (const auto& r : supervisor->replicas()) {
        nlohmann::json process = {{"replica_id", r.id},
                                  {"application", r.application},
                                  {"deployment", r.deployment},
                                  {"state", r.state},
                                  {"pid", r.pid},
                                  {"http_port", r.http_port},
                                  {"restarts", r.restarts}};
        if (!r.last_error.empty()) {
          process["last_error"] = r.last_error;
        }
        processes.push_back(std::move(process));
        nlohmann::json& d = deployments[{r.application, r.deployment}];
        if (d.is_null()) {
          d = {{"application", r.application}, {"deployment", r.deployment}, {"state", "running"}};
        }
        if (r.state == "backoff" && !r.last_error.empty() && d["state"] != "failing") {
          d["state"] = "failing";
          d["message"] = r.last_error;
        }
      }
      nlohmann::json deployment_list = nlohmann::json::array();
      for (auto& [key, d] : deployments) {
        deployment_list.push_back(std::move(d));
      }
      return nlohmann::json{{"processes", processes},
                            {"deployments", deployment_list},
                            {"replica_restarts", supervisor->restartsTotal()}};
    };
  }
  ControlServer control(m, *token, hooks);
  if (Status st = control.start(env.control_port); !st.ok()) {
    std::cerr << "haproxy-manager: " << messageOf(st) << "\n";
    (*manager)->stop();
    return 1;
  }
  const std::string host =
      config->http_options.host == "0.0.0.0" ? "127.0.0.1" : config->http_options.host;
  std::cout << nlohmann::ordered_json{{"event", "ready"},
                                      {"http_port", config->http_options.port},
                                      {"control_port", env.control_port},
                                      {"metrics_port", env.metrics_port},
                                      {"pid", ::getpid()}}
                   .dump()
            << std::endl;
  spdlog::info(
      "haproxy-manager: serving http://{}:{}/ (routes: /-/routes), metrics "
      "http://{}:{}/metrics and /metrics/manager, admin socket {}",
      host, config->http_options.port, host, env.metrics_port, env.socket_path);

  int signal_number = 0;
  while (true) {
    sigwait(&signals, &signal_number);
    if (signal_number != SIGHUP) {
      break;
    }
    StatusOr<ServeConfig> fresh = loadServeConfig(config_path);
    if (!fresh.ok()) {
      spdlog::error("haproxy-manager: SIGHUP: {}; keeping the running config",
                    messageOf(fresh.status()));
      continue;
    }
    StatusOr<std::string> yaml = readWholeFile(config_path, "config");
    StatusOr<ApplyOutcome> outcome =
        deploy(*std::move(fresh), config_path, yaml.ok() ? *yaml : std::string());
    if (!outcome.ok()) {
      spdlog::error("haproxy-manager: SIGHUP deploy failed: {}", messageOf(outcome.status()));
    } else {
      spdlog::info("haproxy-manager: SIGHUP deployed {} ({})", config_path, outcome->action);
    }
  }
  spdlog::info("haproxy-manager: signal {} received; stopping HAProxy", signal_number);
  control.stop();
  // Requests HAProxy already accepted, queued ones too, are answered before any replica leaves.
  (*manager)->quiesce();
  if (supervisor) {
    supervisor->stop();  // drains every replica through HAProxy, then stops it
  }
  (*manager)->stop();
  std::cout << nlohmann::json{{"event", "stopped"}}.dump() << std::endl;
  return 0;
}

// Prints a control-API reply; exit code 0 for 2xx, 1 otherwise.
int printReply(const StatusOr<ControlReply>& reply) {
  if (!reply.ok()) {
    std::cerr << "haproxy-manager: " << messageOf(reply.status()) << "\n";
    return 1;
  }
  if (reply->status / 100 != 2) {
    // The control API's {"error": "..."}: printed as every other refusal is, so that `deploy`
    // refuses a config in the same words as `start` does.
    const nlohmann::json body = nlohmann::json::parse(reply->body, nullptr, false);
    if (body.is_object() && body.size() == 1 && body.contains("error") &&
        body["error"].is_string()) {
      std::cerr << "haproxy-manager: " << body["error"].get<std::string>() << "\n";
      return 1;
    }
  }
  (reply->status / 100 == 2 ? std::cout : std::cerr) << reply->body;
  if (!reply->body.empty() && reply->body.back() != '\n') {
    std::cout << "\n";
  }
  return reply->status / 100 == 2 ? 0 : 1;
}

StatusOr<ControlClient> client(const ManagerEnv& env, bool with_token) {
  std::string token;
  if (with_token) {
    StatusOr<std::string> text = readWholeFile(tokenPath(env), "control token");
    if (!text.ok()) {
      return absl::PermissionDeniedError(absl::StrCat(
          messageOf(text.status()),
          " (changing commands need the token `haproxy-manager start` writes; run as its user)"));
    }
    token = *text;
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) {
      token.pop_back();
    }
  }
  return ControlClient(env.control_port, token);
}

}  // namespace

int runCli(const std::vector<std::string>& args) {
  Args flags;
  if (std::optional<int> exit_code = parseArgs(args, &flags)) {
    return *exit_code;
  }
  StatusOr<ManagerEnv> env = readManagerEnv(processEnv());
  if (!env.ok()) {
    std::cerr << "haproxy-manager: " << messageOf(env.status()) << "\n";
    return 1;
  }
  const std::string& command = flags.command;
  if (command == "start") {
    if (flags.template_dir) {
      env->template_dir = *flags.template_dir;
    }
    return runStart(*env, flags);
  }
  if (command == "status" || command == "routes") {
    StatusOr<ControlClient> c = client(*env, false);
    return printReply(c->get("/" + command));
  }
  if (command == "deploy") {
    // Named as `start` names its file, so both refuse a config in the same words.
    const std::string source = std::filesystem::absolute(flags.file).string();
    StatusOr<std::string> yaml = readWholeFile(source, "serve config");
    if (!yaml.ok()) {
      std::cerr << "haproxy-manager: " << messageOf(yaml.status()) << "\n";
      return 1;
    }
    // Validate here too, so a typo is reported without a round trip.
    if (StatusOr<ServeConfig> parsed = parseServeConfig(*yaml, source); !parsed.ok()) {
      std::cerr << "haproxy-manager: " << messageOf(parsed.status()) << "\n";
      return 1;
    }
    StatusOr<ControlClient> c = client(*env, true);
    if (!c.ok()) {
      std::cerr << "haproxy-manager: " << messageOf(c.status()) << "\n";
      return 1;
    }
    return printReply(
        c->send("POST", "/deploy", *yaml, "application/yaml", "X-Serve-Config-Source: " + source));
  }
  if (command == "drain") {
    StatusOr<ControlClient> c = client(*env, true);
    if (!c.ok()) {
      std::cerr << "haproxy-manager: " << messageOf(c.status()) << "\n";
      return 1;
    }
    const bool undo = flags.undo;
    if (int rc = printReply(c->send("POST", undo ? "/undrain" : "/drain", "")); rc != 0 || undo) {
      return rc;
    }
    // Health checks now fail; wait for the requests already inside to finish. The connection
    // of this wait is not a request of the HTTP frontend, so it does not count itself.
    // Stay drained at least RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S, so that load balancers in
    // front of the node see /-/healthz fail before it is reported drained.
    const auto drain_started = std::chrono::steady_clock::now();
    const auto min_period =
        std::chrono::milliseconds(static_cast<long long>(env->node_draining_period_s * 1000));
    const double timeout_s =
        flags.timeout_s.value_or(std::max(60.0, env->node_draining_period_s + 30));
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(static_cast<long long>(timeout_s * 1000));
    while (true) {
      StatusOr<ControlReply> reply = c->get("/status");
      long long in_flight = -1;
      if (reply.ok() && reply->status == 200) {
        nlohmann::json status = nlohmann::json::parse(reply->body, nullptr, false);
        if (!status.is_discarded()) {
          in_flight = status.value("in_flight", -1LL);
        }
      }
      if (in_flight == 0 && std::chrono::steady_clock::now() - drain_started >= min_period) {
        std::cout << "{\"drained\":true}\n";
        return 0;
      }
      if (std::chrono::steady_clock::now() >= until) {
        if (in_flight == 0) {
          std::cerr << "haproxy-manager: no request in progress, but the node stays drained for "
                    << "RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S (" << env->node_draining_period_s
                    << " s), longer than --timeout " << timeout_s << " s\n";
        } else {
          std::cerr << "haproxy-manager: " << in_flight << " request(s) still in progress after "
                    << timeout_s << " s\n";
        }
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  if (command == "register") {
    nlohmann::json body{{"application", flags.app},
                        {"deployment", flags.deployment},
                        {"host", flags.host},
                        {"http_port", flags.port},
                        {"replica_id", flags.replica_id}};
    if (flags.grpc_port) {
      body["grpc_port"] = *flags.grpc_port;
    }
    if (flags.pid) {
      body["pid"] = *flags.pid;
    }
    StatusOr<ControlClient> c = client(*env, true);
    if (!c.ok()) {
      std::cerr << "haproxy-manager: " << messageOf(c.status()) << "\n";
      return 1;
    }
    return printReply(c->send("POST", "/replicas", body.dump()));
  }
  if (command == "deregister") {
    StatusOr<ControlClient> c = client(*env, true);
    if (!c.ok()) {
      std::cerr << "haproxy-manager: " << messageOf(c.status()) << "\n";
      return 1;
    }
    return printReply(c->send("DELETE", "/replicas/" + flags.replica_id, ""));
  }
  return usageError(absl::StrCat("unknown command '", command, "'"));
}

}  // namespace serve::manager
