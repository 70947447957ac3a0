#include "haproxy-manager/control/control_server.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/uuid.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace serve::manager {

namespace {

using nlohmann::json;

json outcomeJson(const ApplyOutcome& outcome) {
  return {{"action", outcome.action},
          {"reasons", outcome.reasons},
          {"commands", outcome.commands},
          {"latency_ms", outcome.latency_ms}};
}

void reply(httplib::Response& res, const StatusOr<ApplyOutcome>& result) {
  if (!result.ok()) {
    res.status = httpStatusOf(result.status());
    res.set_content(json{{"error", messageOf(result.status())}}.dump() + "\n", "application/json");
    return;
  }
  res.status = 200;
  res.set_content(outcomeJson(*result).dump() + "\n", "application/json");
}

void replyError(httplib::Response& res, const Status& status) {
  res.status = httpStatusOf(status);
  res.set_content(json{{"error", messageOf(status)}}.dump() + "\n", "application/json");
}

StatusOr<ReplicaRegistration> parseRegistration(const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("the body must be a JSON object");
  }
  ReplicaRegistration r;
  auto text = [&](const char* key, std::string* out, bool required) -> Status {
    auto it = j.find(key);
    if (it == j.end()) {
      return required ? absl::InvalidArgumentError(absl::StrCat("missing \"", key, "\""))
                      : absl::OkStatus();
    }
    if (!it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be a string"));
    }
    *out = it->get<std::string>();
    return absl::OkStatus();
  };
  auto number = [&](const char* key, int* out, bool required) -> Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      return required ? absl::InvalidArgumentError(absl::StrCat("missing \"", key, "\""))
                      : absl::OkStatus();
    }
    if (!it->is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be an integer"));
    }
    *out = it->get<int>();
    return absl::OkStatus();
  };
  for (Status st :
       {text("replica_id", &r.replica_id, true), text("application", &r.application, true),
        text("deployment", &r.deployment, true), text("host", &r.host, false),
        number("http_port", &r.http_port, true), number("grpc_port", &r.grpc_port, false),
        number("pid", &r.pid, false)}) {
    if (!st.ok()) {
      return st;
    }
  }
  if (r.host.empty()) {
    r.host = "127.0.0.1";
  }
  return r;
}

}  // namespace

int httpStatusOf(const Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

StatusOr<std::string> writeControlToken(const std::string& path) {
  const std::string token = absl::StrCat(uuidV4(), uuidV4());
  ::unlink(path.c_str());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  const std::string line = token + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  if (!ok) {
    return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  return token;
}

ControlServer::ControlServer(Manager& manager, std::string token, ControlHooks hooks)
    : manager_(manager),
      token_(std::move(token)),
      hooks_(std::move(hooks)),
      server_(std::make_unique<httplib::Server>()) {
  // HAProxy keeps its connection for /metrics/manager open between scrapes; stop() waits for
  // idle keep-alive connections to time out, so keep that wait short.
  server_->set_keep_alive_timeout(1);
  routes();
}

ControlServer::~ControlServer() { stop(); }

void ControlServer::routes() {
  httplib::Server& s = *server_;
  // Changing requests need the token.
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.method == "GET" || req.method == "HEAD") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    if (req.get_header_value("Authorization") != "Bearer " + token_) {
      replyError(res, absl::UnauthenticatedError(
                          "missing or wrong token: send \"Authorization: Bearer <token>\" with "
                          "the token from control.token beside haproxy.cfg"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  s.Get("/-/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  s.Get("/status", [this](const httplib::Request&, httplib::Response& res) {
    nlohmann::json status = manager_.status();
    if (hooks_.extra_status) {
      status.update(hooks_.extra_status());
    }
    res.set_content(status.dump(2) + "\n", "application/json");
  });
  s.Get("/routes", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(manager_.routes().dump() + "\n", "application/json");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(manager_.metricsText(), "text/plain; version=0.0.4");
  });
  s.Post("/replicas", [this](const httplib::Request& req, httplib::Response& res) {
    StatusOr<ReplicaRegistration> r = parseRegistration(req.body);
    if (!r.ok()) {
      replyError(res, r.status());
      return;
    }
    reply(res, manager_.registerReplica(*r));
  });
  s.Delete(R"(/replicas/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    reply(res, manager_.deregisterReplica(req.matches[1]));
  });
  s.Post("/deploy", [this](const httplib::Request& req, httplib::Response& res) {
    std::string source = req.get_header_value("X-Serve-Config-Source");
    if (source.empty()) {
      source = "deployed config";
    }
    StatusOr<ServeConfig> config = parseServeConfig(req.body, source);
    if (!config.ok()) {
      replyError(res, config.status());
      return;
    }
    reply(res, hooks_.deploy ? hooks_.deploy(*std::move(config), source, req.body)
                             : manager_.deploy(*std::move(config)));
  });
  s.Post("/drain", [this](const httplib::Request&, httplib::Response& res) {
    reply(res, manager_.setDraining(true));
  });
  s.Post("/undrain", [this](const httplib::Request&, httplib::Response& res) {
    reply(res, manager_.setDraining(false));
  });
}

Status ControlServer::start(int port) {
  if (!server_->bind_to_port("127.0.0.1", port)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot bind the control API to 127.0.0.1:", port,
                     " (in use? set RAY_SERVE_HAPROXY_CONTROL_PORT)"));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return absl::OkStatus();
}

void ControlServer::stop() {
  if (server_ != nullptr) {
    server_->stop();
  }
  if (thread_.joinable()) {
    thread_.join();
  }
}

}  // namespace serve::manager
