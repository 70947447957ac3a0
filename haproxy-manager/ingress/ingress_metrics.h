#pragma once

// The ingress request metrics: one observation per request HAProxy logged (ingress_log_parser),
// under the names Ray Serve's proxy uses, so that queries written for Ray Serve carry over.
// HAProxy's own exporter (:9101/metrics) has per-backend averages; these are real histograms
// with the route and method. Exported with the manager's metrics (serialize()).
//
//   serve_num_http_requests{application,route,method,status}          counter
//   serve_num_http_error_requests{application,route,method,status}    counter, status >= 400 or 0
//   serve_http_request_latency_ms{application,route,method,status}    histogram (%Ta, ms)
//   serve_num_grpc_requests{application,method,code}                  counter (gRPC frontend)
//   serve_num_grpc_error_requests{application,method,code}            counter, code != OK
//   serve_grpc_request_latency_ms{application,method,code}            histogram (%Ta, ms)
//   serve_ingress_log_errors_total                                     counter: unparseable lines
//
// Labels are bounded: application and route come from the config (HAProxy's backends and route
// maps, "-" when HAProxy answered itself), the method is one of kStandardMethods or "OTHER",
// the status is 100..599, 499 for a client that closed first (as Ray records it), or 0 when
// HAProxy sent no status. A series stays once created (for the manager's lifetime), so removed
// applications keep their final counts.
//
// gRPC: `method` is the call's path when it is one of kGrpcMethods, else "OTHER" ("-" when the
// path was not /<service>/<method>); `code` is the gRPC status name (grpcCodeOf).
//
// Errors follow Ray Serve's proxy, which counts every 4xx and 5xx (404s and client aborts
// included); 0 (no response sent) counts too. Filter on `status` for 5xx only.
//
// Thread-safe: record() runs on the receiver thread, serialize() on the control server's.
#include <array>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "common/metrics.h"
#include "haproxy-manager/ingress/ingress_log_parser.h"

namespace serve::manager {

// The HTTP methods kept as they are; any other is counted as "OTHER".
inline constexpr std::array<std::string_view, 9> kStandardMethods = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};
inline constexpr char kOtherMethod[] = "OTHER";
inline constexpr int kClientClosedStatus = 499;

// The gRPC methods kept as they are in the `method` label (any other path is "OTHER"): the
// KServe v2 service's and the standard health service's.
inline constexpr std::array<std::string_view, 8> kGrpcMethods = {
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
    "/inference.GRPCInferenceService/ModelReady",
    "/inference.GRPCInferenceService/ServerMetadata",
    "/inference.GRPCInferenceService/ModelMetadata",
    "/inference.GRPCInferenceService/ModelInfer",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch"};

// The label values of one HTTP record: {application, route, method, status}.
std::array<std::string, 4> ingressLabels(const IngressRecord& record);

// The gRPC status of a logged call, by name ("OK", "NOT_FOUND", ...): the grpc-status header
// when there was one; else CANCELLED when the client went first; else OK for HTTP 200 (a call
// that completed with trailers, which HAProxy does not log, means grpc-status 0 for unary calls
// of these services); else gRPC's documented mapping of the HTTP status (HAProxy's own 503 and
// 504 pages are UNAVAILABLE).
std::string grpcCodeOf(const IngressRecord& record);

// The label values of one gRPC record: {application, method, code}.
std::array<std::string, 3> grpcIngressLabels(const IngressRecord& record);

class IngressMetrics {
  metrics::Registry registry_;  // first: the references below point into it

 public:
  IngressMetrics();

  void record(const IngressRecord& record);
  // A datagram that did not parse (serve_ingress_log_errors_total).
  void recordUnparseable() { log_errors_.inc(); }

  std::string serialize() const { return registry_.serialize(); }

 private:
  // The three children of one label set, looked up once.
  struct Series {
    metrics::Counter* requests;
    metrics::Counter* errors;  // null when the status is not an error
    metrics::Histogram* latency;
  };
  // One protocol's three families.
  struct Families {
    metrics::Family<metrics::Counter>& requests;
    metrics::Family<metrics::Counter>& errors;
    metrics::Family<metrics::Histogram>& latency;
  };

  // The series of one label set (created on first use), and one observation on it.
  template <std::size_t N>
  void observe(Families& families, std::map<std::array<std::string, N>, Series>& known,
               std::array<std::string, N> labels, bool error, std::int64_t latency_ms);

  Families http_;
  Families grpc_;
  metrics::Counter& log_errors_;

  std::mutex mu_;  // guards the series maps; the metrics themselves are atomics
  std::map<std::array<std::string, 4>, Series> http_series_;
  std::map<std::array<std::string, 3>, Series> grpc_series_;
};

}  // namespace serve::manager
