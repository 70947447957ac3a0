#include "replica/app/replica_app.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "replica/app/model_factory.h"
#include "replica/app/shutdown_signals.h"

namespace serve {
namespace {

std::chrono::milliseconds secondsToMs(double s) {
  return std::chrono::milliseconds(static_cast<int64_t>(s * 1000.0));
}

Status writeFileAtomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out) {
      return absl::InvalidArgumentError("--port-file: cannot write '" + tmp + "'");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InvalidArgumentError("--port-file: cannot rename to '" + path + "'");
  }
  return absl::OkStatus();
}

struct PortChoice {
  const char* protocol;  // for messages: "HTTP", "gRPC"
  const char* flag;      // "--http-port"
  const char* env_name;  // the variables' infix: RAY_SERVE_DIRECT_INGRESS_MIN_<env_name>_PORT
  int explicit_port;     // 0: pick from [min, max)
  int min;
  int max;
  int retry_count;
  std::string host;
};

// Binds the flag's port exactly, or the first free port of the range, as Ray does: lowest first
// keeps port sets predictable. `bind` answers Unavailable for a port in use.
Status bindPort(const PortChoice& c, const std::function<Status(int)>& bind) {
  if (c.explicit_port != 0) {
    Status st = bind(c.explicit_port);
    if (!st.ok()) {
      return absl::UnavailableError(std::string(c.flag) + "=" + std::to_string(c.explicit_port) +
                                    ": cannot bind: " + std::string(st.message()));
    }
    return st;
  }
  std::string range = "[" + std::to_string(c.min) + ", " + std::to_string(c.max) + ")";
  int attempts = 0;
  std::string last_error = "no port tried";
  for (int port = c.min; port < c.max && attempts < c.retry_count; ++port, ++attempts) {
    Status st = bind(port);
    if (st.ok()) {
      if (attempts > 0) {
        spdlog::info("bound {} port {} after {} ports in use", c.protocol, port, attempts);
      }
      return st;
    }
    last_error = std::string(st.message());
    if (!absl::IsUnavailable(st)) {
      break;  // not "in use": another port will not help
    }
  }
  return absl::UnavailableError(
      std::string("no free ") + c.protocol + " port in " + range + " on " + c.host + " after " +
      std::to_string(attempts) + " attempts (last: " + last_error +
      "); widen RAY_SERVE_DIRECT_INGRESS_MIN_" + c.env_name + "_PORT/MAX_" + c.env_name +
      "_PORT or RAY_SERVE_DIRECT_INGRESS_PORT_RETRY_COUNT");
}

}  // namespace

StatusOr<std::unique_ptr<ReplicaApp>> ReplicaApp::create(const ReplicaFlags& flags,
                                                         const ReplicaEnv& env) {
  std::unique_ptr<ReplicaApp> app(new ReplicaApp());
  app->flags_ = flags;
  app->env_ = env;

  StatusOr<ServeConfig> config = loadServeConfig(flags.config_path);
  if (!config.ok()) {
    return config.status();
  }
  app->config_ = *std::move(config);
  const ApplicationSpec* spec = app->config_.findApplication(flags.app);
  if (spec == nullptr) {
    std::string names;
    for (const ApplicationSpec& a : app->config_.applications) {
      names += (names.empty() ? "" : ", ") + a.name;
    }
    return absl::InvalidArgumentError("--app=" + flags.app + ": no such application in " +
                                      flags.config_path + " (it has: " + names + ")");
  }
  const DeploymentSpec* deployment = nullptr;
  if (flags.deployment.empty()) {
    if (spec->deployments.size() != 1) {
      return absl::InvalidArgumentError("--deployment is required: application '" + spec->name +
                                        "' has " + std::to_string(spec->deployments.size()) +
                                        " deployments");
    }
    deployment = &spec->deployments.front();
  } else {
    for (const DeploymentSpec& d : spec->deployments) {
      if (d.name == flags.deployment) {
        deployment = &d;
      }
    }
    if (deployment == nullptr) {
      return absl::InvalidArgumentError("--deployment=" + flags.deployment +
                                        ": no such deployment in application '" + spec->name + "'");
    }
  }
  app->app_name_ = spec->name;
  app->deployment_name_ = deployment->name;
  app->draining_period_ = secondsToMs(flags.draining_period_s.value_or(env.min_draining_period_s));

  LoggingOptions logging;
  logging.component =
      "replica_" + spec->name + "_" + deployment->name + "_" + std::to_string(::getpid());
  logging.log_dir = flags.log_dir.value_or(env.log_dir);
  logging.to_stderr = env.log_to_stderr;
  if (Status st = setupLogging(logging); !st.ok()) {
    return st;
  }
  app->request_log_ = std::make_unique<RequestLog>(env.request_path_log_buffer_size);

  ModelContext model_context;
  model_context.config_dir = !flags.base_dir.empty()
                                 ? flags.base_dir
                                 : std::filesystem::path(flags.config_path).parent_path().string();
  model_context.cpu_threads =
      env.omp_num_threads > 0
          ? env.omp_num_threads
          : std::max(1, static_cast<int>(deployment->ray_actor_options.num_cpus));
  model_context.want_gpu = deployment->ray_actor_options.num_gpus > 0;
  model_context.application = spec->name;
  model_context.route_prefix = spec->route_prefix;
  model_context.deployment = deployment;
  StatusOr<std::unique_ptr<Model>> model = createModel(deployment->model, model_context);
  if (!model.ok()) {
    return model.status();
  }
  // Ready means able to compute: one forward pass before the port is bound. (A Python class is
  // ready once its __init__ has returned: it may not take tensors at all.)
  if (!(*model)->servesHttp()) {
    if (Status st = warmUp(**model); !st.ok()) {
      return st;
    }
  }
  auto* python_model = dynamic_cast<python::PythonModel*>(model->get());
  spdlog::info("model '{}' ({}) loaded; forward passes run on the {}", (*model)->metadata().name,
               deployment->model.kind, (*model)->metadata().backend);

  app->metrics_ = std::make_unique<ReplicaMetrics>(spec->name, deployment->name);
  if (python_model != nullptr) {
    ReplicaMetrics* metrics = app->metrics_.get();
    python_model->onWorkerRestart([metrics] { metrics->python_worker_restarts.inc(); });
  }
  app->metrics_->setBackend((*model)->metadata().backend);
  InferenceOptions inference;
  inference.max_ongoing_requests = deployment->max_ongoing_requests;
  inference.max_queued_requests = deployment->max_queued_requests;
  inference.batching.max_batch_size = static_cast<size_t>(deployment->batching.max_batch_size);
  inference.batching.batch_wait_timeout = std::chrono::nanoseconds(
      static_cast<int64_t>(deployment->batching.batch_wait_timeout_s * 1e9));
  inference.batching.linger_fraction = deployment->batching.linger_fraction;
  if (python_model != nullptr && !deployment->batching_configured) {
    // No `batching:` in the config: a @serve.batch on the class says how to batch, as in Ray.
    if (std::optional<python::DeclaredBatching> declared = python_model->declaredBatching()) {
      inference.batching.max_batch_size = static_cast<size_t>(declared->max_batch_size);
      inference.batching.batch_wait_timeout =
          std::chrono::nanoseconds(static_cast<int64_t>(declared->batch_wait_timeout_s * 1e9));
      spdlog::info("batching from @serve.batch: max_batch_size {}, batch_wait_timeout_s {}",
                   declared->max_batch_size, declared->batch_wait_timeout_s);
    }
  }
  app->service_ = std::make_unique<InferenceService>(*std::move(model), inference, *app->metrics_);

  InferenceService* service = app->service_.get();
  ReplicaApp* self = app.get();
  app->health_ = std::make_unique<HealthMonitor>(
      [service](HealthMonitor::TimePoint now) { return service->stalledFor(now); },
      secondsToMs(flags.watchdog_timeout_s), [self](HealthState) { self->syncGrpcHealth(); });
  app->python_model_ = python_model;
  if (python_model != nullptr) {
    HealthMonitor* health = app->health_.get();
    python_model->startHealthChecks([health](const Status& st) {
      if (!st.ok()) {
        spdlog::error("health check failed: {}", std::string(st.message()));
      }
      health->setModelHealthy(st.ok(), std::string(st.message()));
    });
  }

  HttpServerOptions server_options;
  server_options.host = flags.host.value_or(env.http_host);
  server_options.max_threads = flags.http_max_threads;
  server_options.max_body_bytes = flags.max_body_bytes;
  server_options.max_connections = flags.max_connections;
  server_options.request_read_timeout = secondsToMs(flags.request_read_timeout_s);
  // Outlive the upstream proxy's keep-alive (http_options.keep_alive_timeout_s, which the
  // manager gives HAProxy) so that HAProxy, not the replica, closes idle connections: a
  // replica closing first races with a request HAProxy is sending on that connection.
  server_options.keep_alive_timeout =
      secondsToMs(app->config_.http_options.keep_alive_timeout_s + 5);
  ReplicaMetrics* metrics = app->metrics_.get();
  app->server_ = std::make_unique<HttpServer>(
      server_options,
      HttpServerHooks{
          .on_slow_request =
              [metrics] {
                metrics->slow_requests.inc();
                metrics->recordBadRequest("request_read_timeout");
              },
          .on_head_too_large = [metrics] { metrics->recordBadRequest("malformed_http"); },
          .on_connection_refused = [metrics] { metrics->refused_connections.inc(); }});

  HttpFrontendOptions frontend;
  frontend.application = spec->name;
  frontend.route_prefix = spec->route_prefix;
  frontend.default_timeout = secondsToMs(app->config_.http_options.request_timeout_s);
  frontend.max_body_bytes = flags.max_body_bytes;
  app->frontend_ = std::make_unique<HttpFrontend>(frontend, *app->service_, *app->health_,
                                                  *app->metrics_, *app->request_log_);
  app->frontend_->install(*app->server_);

  if (Status st = app->bindHttp(flags, env); !st.ok()) {
    return st;
  }

  if (flags.grpc_port != ReplicaFlags::kNoGrpc) {
    GrpcFrontendOptions grpc_frontend;
    grpc_frontend.default_timeout = frontend.default_timeout;
    app->grpc_frontend_ = std::make_unique<GrpcFrontend>(
        grpc_frontend, *app->service_, *app->health_, *app->metrics_, *app->request_log_);
    GrpcServerOptions grpc_options;
    grpc_options.host = server_options.host;  // the same address as HTTP
    grpc_options.max_message_bytes = env.grpc_max_message_length;
    grpc_options.max_threads = static_cast<int>(flags.grpc_max_threads);
    app->grpc_server_ = std::make_unique<GrpcServer>(grpc_options, *app->grpc_frontend_);
    if (Status st = app->bindGrpc(flags, env); !st.ok()) {
      return st;
    }
    app->grpc_health_target_.store(app->grpc_server_.get());
    app->syncGrpcHealth();
  }
  if (!flags.control_socket.empty()) {
    app->control_ = std::make_unique<ControlSocket>(
        flags.control_socket,
        [self](const nlohmann::json& request) { return self->control(request); });
    if (Status st = app->control_->start(); !st.ok()) {
      return st;
    }
  }
  return app;
}

nlohmann::json ReplicaApp::control(const nlohmann::json& request) {
  const std::string op = request["op"].get<std::string>();
  if (op == "health") {
    static constexpr const char* kNames[] = {"healthy", "unhealthy", "draining"};
    return {{"ok", true},
            {"state", kNames[static_cast<int>(health_->state())]},
            {"reason", health_->reason()}};
  }
  if (op == "reconfigure") {
    if (python_model_ == nullptr) {
      return {{"ok", false}, {"error", "only a model of kind python has a reconfigure method"}};
    }
    const nlohmann::json user_config = request.value("user_config", nlohmann::json());
    double timeout_s = 30;
    if (auto t = request.find("timeout_s");
        t != request.end() && t->is_number() && *t > 0 && *t <= 3600) {
      timeout_s = t->get<double>();
    }
    spdlog::info("control: reconfigure with user_config {}", user_config.dump());
    Status st = python_model_->reconfigure(
        user_config, std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
    if (!st.ok()) {
      spdlog::error("control: reconfigure failed: {}", std::string(st.message()));
      return {{"ok", false}, {"error", std::string(st.message())}};
    }
    return {{"ok", true}};
  }
  return {{"ok", false},
          {"error", absl::StrCat("unknown op \"", op, "\" (expected health or reconfigure)")}};
}

void ReplicaApp::syncGrpcHealth() {
  std::lock_guard lock(grpc_health_mu_);
  if (GrpcServer* grpc = grpc_health_target_.load()) {
    grpc->setServing(health_->state() == HealthState::kHealthy);
  }
}

ReplicaApp::~ReplicaApp() {
  control_.reset();  // no control request may reach a part being torn down
  if (python_model_ != nullptr) {
    python_model_->stopHealthChecks();  // its reports go to health_, which is destroyed first
  }
  {
    // The health monitor outlives the gRPC server (members go in reverse order): stop it from
    // reaching a server that is gone.
    std::lock_guard lock(grpc_health_mu_);
    grpc_health_target_.store(nullptr);
  }
  if (serve_thread_.joinable()) {
    server_->stop();
    serve_thread_.join();
  }
}

Status ReplicaApp::bindHttp(const ReplicaFlags& flags, const ReplicaEnv& env) {
  return bindPort({.protocol = "HTTP",
                   .flag = "--http-port",
                   .env_name = "HTTP",
                   .explicit_port = flags.http_port,
                   .min = env.min_http_port,
                   .max = env.max_http_port,
                   .retry_count = env.port_retry_count,
                   .host = flags.host.value_or(env.http_host)},
                  [this](int port) { return server_->bind(port); });
}

Status ReplicaApp::bindGrpc(const ReplicaFlags& flags, const ReplicaEnv& env) {
  return bindPort({.protocol = "gRPC",
                   .flag = "--grpc-port",
                   .env_name = "GRPC",
                   .explicit_port = flags.grpc_port,
                   .min = env.min_grpc_port,
                   .max = env.max_grpc_port,
                   .retry_count = env.port_retry_count,
                   .host = flags.host.value_or(env.http_host)},
                  [this](int port) { return grpc_server_->bind(port); });
}

bool ReplicaApp::printEvent(const std::string& json_line) {
  std::fputs(json_line.c_str(), stdout);
  std::fputc('\n', stdout);
  return std::fflush(stdout) == 0;
}

void ReplicaApp::abandon(int signal) {
  int ongoing = service_->ongoing();
  int queued = service_->queued();
  spdlog::error(
      "second signal ({}) during drain: stopping now and abandoning {} in-flight and {} queued "
      "requests",
      signal, ongoing, queued);
  request_log_->flush();
  spdlog::default_logger()->flush();
  printEvent(
      nlohmann::json{{"event", "abandoned"}, {"ongoing", ongoing}, {"queued", queued}}.dump());
  std::_Exit(1);
}

int ReplicaApp::run() {
  std::atomic<bool> serve_done{false};
  serve_thread_ = std::thread([this, &serve_done] {
    server_->serve();
    serve_done.store(true);
  });
  // cpp-httplib's stop() does nothing until the accept loop has started, so a stop that came
  // sooner (a signal right after the start, or an unread ready line) would leave it accepting
  // forever. Nothing below runs before the loop is up.
  while (!server_->is_running() && !serve_done.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  nlohmann::ordered_json ready = {{"event", "ready"},
                                  {"http_port", server_->port()},
                                  {"grpc_port", nullptr},
                                  {"pid", ::getpid()}};
  if (grpc_server_ != nullptr) {
    ready["grpc_port"] = grpc_server_->port();
  }
  if (!flags_.port_file.empty()) {
    if (Status st = writeFileAtomically(flags_.port_file, ready.dump() + "\n"); !st.ok()) {
      spdlog::error("{}", std::string(st.message()));
      return 1;
    }
  }
  spdlog::info("serving application '{}' deployment '{}' on {}:{} (gRPC: {})", app_name_,
               deployment_name_, flags_.host.value_or(env_.http_host), server_->port(),
               grpc_server_ != nullptr ? std::to_string(grpc_server_->port()) : "off");
  std::optional<int> first;
  errno = 0;
  if (!printEvent(ready.dump()) && errno == EPIPE) {
    // Whoever started this replica (a manager that has since died) will never route to it, and
    // its successor does not know it: stop at once rather than serve nobody forever.
    spdlog::error(
        "the process that started this replica is gone (its ready line has no reader); "
        "stopping");
    draining_period_ = std::chrono::milliseconds(0);
    orphaned_ = true;
    first = SIGTERM;
  }
  while (!first) {
    first = ShutdownSignals::wait(std::chrono::milliseconds(-1));
  }

  // Phase 1: stay fully reachable while health says DRAINING, so the proxy takes this replica
  // out of rotation before its listener goes away.
  health_->startDraining();
  spdlog::info("signal {}: draining; serving for {} ms more", *first, draining_period_.count());
  printEvent(R"({"event":"draining"})");
  auto wait_or_abandon = [&](std::chrono::milliseconds d) {
    if (std::optional<int> sig = ShutdownSignals::wait(d)) {
      abandon(*sig);
    }
  };
  auto drain_until = std::chrono::steady_clock::now() + draining_period_;
  while (std::chrono::steady_clock::now() < drain_until) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        drain_until - std::chrono::steady_clock::now());
    wait_or_abandon(std::max(std::chrono::milliseconds(1), left));
  }

  // Phase 2: close the listeners (new connections are refused, so a stale proxy worker's
  // connect fails and is retried elsewhere; new gRPC calls on open connections get
  // UNAVAILABLE), end keep-alive, and let every in-flight and queued request of both protocols
  // finish on its own thread.
  spdlog::info("draining period over: closing the listeners; {} in flight, {} queued",
               service_->ongoing(), service_->queued());
  server_->drain();
  server_->stop();
  std::atomic<bool> grpc_done{grpc_server_ == nullptr};
  std::thread grpc_stopper;
  if (grpc_server_ != nullptr) {
    // GrpcServer::shutdown() blocks until its calls finish; the main thread stays free to
    // notice a second signal.
    grpc_stopper = std::thread([this, &grpc_done] {
      grpc_server_->shutdown();
      grpc_done.store(true);
    });
  }
  while (!serve_done.load() || !grpc_done.load()) {
    wait_or_abandon(std::chrono::milliseconds(20));
  }
  serve_thread_.join();
  if (grpc_stopper.joinable()) {
    grpc_stopper.join();
  }
  service_->stop();
  request_log_->flush();
  spdlog::info("drained; exiting");
  spdlog::default_logger()->flush();
  printEvent(R"({"event":"stopped"})");
  return orphaned_ ? 1 : 0;
}

}  // namespace serve
