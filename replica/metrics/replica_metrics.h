#pragma once

// Every metric the replica exports on /metrics, registered once at start. Families carry the
// application and deployment as labels so a scrape of many replicas aggregates cleanly.
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/metrics.h"

namespace serve {

class ReplicaMetrics {
  // Declared first: the public metric references below are bound to children of registry_
  // in the constructor's initializer list, so it must be constructed before them.
  metrics::Registry registry_;
  std::string application_;
  std::string deployment_;

 public:
  ReplicaMetrics(const std::string& application, const std::string& deployment);

  metrics::Registry& registry() { return registry_; }

  // One finished HTTP request: route is the matched pattern ("/v2/models/infer", the route
  // prefix, "/-/healthz", ...), never the raw path, so label cardinality stays bounded.
  void recordRequest(const std::string& route, const std::string& method, int status,
                     double latency_ms);
  // One finished gRPC call: method is the RPC ("ModelInfer", "ServerReady", ...), code the
  // gRPC status name ("OK", "RESOURCE_EXHAUSTED", ...; CANCELLED = the client went away). A
  // family of its own, so the HTTP series keep their names and labels.
  void recordGrpcRequest(const std::string& method, const std::string& code, double latency_ms);
  // Where forward passes run ("cpu" or "cuda"): serve_model_backend_info{backend} = 1.
  void setBackend(const std::string& backend);
  // A request refused for bad input, by reason (malformed_json, invalid_input, ...).
  void recordBadRequest(const std::string& reason);

  metrics::Counter& forward_passes;          // serve_model_forward_passes_total
  metrics::Counter& model_requests;          // serve_model_requests_total: requests that reached it
  metrics::Counter& skipped_requests;        // serve_replica_skipped_requests_total
  metrics::Counter& slow_requests;           // serve_replica_request_read_timeouts_total
  metrics::Counter& refused_connections;     // serve_replica_refused_connections_total
  metrics::Histogram& batch_size;            // serve_batch_size
  metrics::Histogram& batch_wait_ms;         // serve_batch_wait_ms
  metrics::Histogram& forward_ms;            // serve_model_forward_latency_ms
  metrics::Gauge& queued;                    // serve_replica_queued_requests
  metrics::Gauge& ongoing;                   // serve_replica_ongoing_requests
  metrics::Gauge& healthy;                   // serve_replica_healthy
  metrics::Gauge& draining;                  // serve_replica_draining
  metrics::Gauge& connections;               // serve_replica_open_connections
  metrics::Counter& python_worker_restarts;  // serve_python_worker_restarts_total

 private:
  metrics::Family<metrics::Counter>* requests_;
  metrics::Family<metrics::Histogram>* latency_;
  metrics::Family<metrics::Counter>* bad_requests_;
  metrics::Family<metrics::Counter>* grpc_requests_;
  metrics::Family<metrics::Histogram>* grpc_latency_;

  struct RequestSeries {
    metrics::Counter* count = nullptr;
    metrics::Histogram* latency = nullptr;
  };
  // Children looked up once per label set and reused; `key` joins the labels with '\0'.
  RequestSeries findSeries(const std::string& key, metrics::Family<metrics::Counter>& counts,
                           std::vector<std::string> count_labels,
                           metrics::Family<metrics::Histogram>& latency,
                           std::vector<std::string> latency_labels);

  std::shared_mutex series_mu_;                            // guards series_
  std::unordered_map<std::string, RequestSeries> series_;  // HTTP and gRPC ("\1" prefix) keys
};

}  // namespace serve
