#pragma once

// The ingress request metrics: one observation per request HAProxy logged (ingress_log_parser),
// under the names Ray Serve's proxy uses, so that queries written for Ray Serve carry over.
// HAProxy's own exporter (:9101/metrics) has per-backend averages; these are real histograms
// with the route and method. Exported with the manager's metrics (serialize()).
//
//   serve_num_http_requests{application,route,method,status}          counter
//   serve_num_http_error_requests{application,route,method,status}    counter, status >= 400 or 0
//   serve_http_request_latency_ms{application,route,method,status}    histogram (%Ta, ms)
//   serve_ingress_log_errors_total                                     counter: unparseable lines
//
// Labels are bounded: application and route come from the config (HAProxy's backends and route
// maps, "-" when HAProxy answered itself), the method is one of kStandardMethods or "OTHER",
// the status is 100..599, 499 for a client that closed first (as Ray records it), or 0 when
// HAProxy sent no status. A series stays once created (for the manager's lifetime), so removed
// applications keep their final counts.
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

// The label values of one record: {application, route, method, status}.
std::array<std::string, 4> ingressLabels(const IngressRecord& record);

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

  metrics::Family<metrics::Counter>& requests_;
  metrics::Family<metrics::Counter>& errors_;
  metrics::Family<metrics::Histogram>& latency_;
  metrics::Counter& log_errors_;

  std::mutex mu_;  // guards series_; the metrics themselves are atomics
  std::map<std::array<std::string, 4>, Series> series_;
};

}  // namespace serve::manager
