#pragma once

// The replica's HTTP API on an HttpServer: health, routes, the KServe v2 endpoints, inference
// at the application's route prefix, and /metrics. Owns the HTTP codec and the mapping of
// results to status codes; inference itself goes through InferenceService.
#include <chrono>
#include <optional>
#include <string>

#include "common/logging.h"
#include "replica/core/inference_service.h"
#include "replica/frontend/http_server.h"
#include "replica/health/health_monitor.h"
#include "replica/metrics/replica_metrics.h"

namespace serve {

// HAProxy's public HTTP frontend sets this header on every request it forwards
// (templates/haproxy.cfg.mustache), replacing any value a client sent. A request that carries it
// came through the node's ingress, so the replica's own pages (/metrics, /-/healthz, /-/routes)
// are not served for it, and the header is not passed on to the model.
inline constexpr const char* kIngressHeader = "x-serve-ingress";

struct HttpFrontendOptions {
  std::string application;
  std::string route_prefix;
  std::chrono::milliseconds default_timeout{0};  // request_timeout_s; 0 = none
  size_t max_body_bytes = 16 * 1024 * 1024;      // larger bodies get 413 (--max-body-bytes)
};

class HttpFrontend {
 public:
  HttpFrontend(HttpFrontendOptions options, InferenceService& service, HealthMonitor& health,
               ReplicaMetrics& metrics, RequestLog& request_log);

  // Registers every route on `server`. The server must outlive this object's use.
  void install(HttpServer& server);

 private:
  struct Exchange;
  // False (with the answer written and the connection marked to close) for a request whose
  // length headers conflict or use a coding other than chunked.
  // `reads_body`: the method's handler reads a body; for the others any body is refused.
  bool acceptFraming(const httplib::Request& req, httplib::Response& res, bool reads_body);
  // The whole body, at most options_.max_body_bytes; nullopt with 413/415/400 written (and the
  // connection marked to close) otherwise.
  std::optional<std::string> readBody(const httplib::Request& req, httplib::Response& res,
                                      const httplib::ContentReader& reader);
  void dispatch(const httplib::Request& req, httplib::Response& res, std::string& body);
  void handleInfer(Exchange& ex, const std::string& model_name);
  // A request at the route prefix for a model that answers HTTP itself (a Python __call__).
  void handleModelHttp(Exchange& ex);
  // options_.default_timeout, or x-request-timeout-seconds; nullopt after answering 400 for a bad
  // header.
  std::optional<std::chrono::nanoseconds> requestTimeout(Exchange& ex);
  // An inference failure as its status code and body (wire_status.h's mapping).
  void writeError(Exchange& ex, const Status& st, std::chrono::nanoseconds timeout);
  void handleHealthz(Exchange& ex);
  void handleMetrics(Exchange& ex);
  void finish(Exchange& ex);

  HttpFrontendOptions options_;
  InferenceService& service_;
  HealthMonitor& health_;
  ReplicaMetrics& metrics_;
  RequestLog& request_log_;
  HttpServer* server_ = nullptr;
  std::string routes_json_;
};

}  // namespace serve
