#include "replica/metrics/replica_metrics.h"

namespace serve {
ReplicaMetrics::ReplicaMetrics(const std::string& application, const std::string& deployment)
    : application_(application),
      deployment_(deployment),
      forward_passes(registry_
                         .counter("serve_model_forward_passes_total",
                                  "Forward passes (batches) the model ran.",
                                  {"application", "deployment"})
                         .with({application, deployment})),
      model_requests(registry_
                         .counter("serve_model_requests_total", "Requests that reached the model.",
                                  {"application", "deployment"})
                         .with({application, deployment})),
      skipped_requests(
          registry_
              .counter("serve_replica_skipped_requests_total",
                       "Requests dropped before reaching the model (deadline passed or client "
                       "gone while queued).",
                       {"application", "deployment"})
              .with({application, deployment})),
      slow_requests(registry_
                        .counter("serve_replica_request_read_timeouts_total",
                                 "Requests not received whole within the request read timeout "
                                 "(answered 408).",
                                 {"application", "deployment"})
                        .with({application, deployment})),
      refused_connections(
          registry_
              .counter("serve_replica_refused_connections_total",
                       "Connections closed unread because --max-connections were open "
                       "(answered 503).",
                       {"application", "deployment"})
              .with({application, deployment})),
      batch_size(registry_
                     .histogram("serve_batch_size", "Requests per forward pass.",
                                {"application", "deployment"},
                                {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096})
                     .with({application, deployment})),
      batch_wait_ms(registry_
                        .histogram("serve_batch_wait_ms",
                                   "How long the oldest request of a batch waited in the batch "
                                   "queue, in milliseconds.",
                                   {"application", "deployment"}, metrics::latencyBucketsMs())
                        .with({application, deployment})),
      forward_ms(registry_
                     .histogram("serve_model_forward_latency_ms",
                                "Duration of one forward pass, in milliseconds.",
                                {"application", "deployment"}, metrics::latencyBucketsMs())
                     .with({application, deployment})),
      queued(registry_
                 .gauge("serve_replica_queued_requests",
                        "Requests waiting for an ongoing-request slot.",
                        {"application", "deployment"})
                 .with({application, deployment})),
      ongoing(registry_
                  .gauge("serve_replica_ongoing_requests",
                         "Requests holding an ongoing-request slot (batch queue or model).",
                         {"application", "deployment"})
                  .with({application, deployment})),
      healthy(registry_
                  .gauge("serve_replica_healthy", "1 while /-/healthz answers 200.",
                         {"application", "deployment"})
                  .with({application, deployment})),
      draining(registry_
                   .gauge("serve_replica_draining", "1 once the replica is draining.",
                          {"application", "deployment"})
                   .with({application, deployment})),
      connections(registry_
                      .gauge("serve_replica_open_connections", "Open client connections.",
                             {"application", "deployment"})
                      .with({application, deployment})),
      python_worker_restarts(
          registry_
              .counter("serve_python_worker_restarts_total",
                       "Python workers started again after the previous one died (kind python).",
                       {"application", "deployment"})
              .with({application, deployment})) {
  requests_ = &registry_.counter(
      "serve_replica_http_requests_total",
      "HTTP requests answered by the replica, by route, method and status code (499 = the "
      "client went away).",
      {"application", "deployment", "route", "method", "status"});
  latency_ =
      &registry_.histogram("serve_deployment_processing_latency_ms",
                           "Time from receiving a request to answering it, in milliseconds.",
                           {"application", "deployment", "route"}, metrics::latencyBucketsMs());
  grpc_requests_ = &registry_.counter(
      "serve_replica_grpc_requests_total",
      "gRPC calls answered by the replica, by method and status code (CANCELLED = the client "
      "went away).",
      {"application", "deployment", "method", "code"});
  grpc_latency_ =
      &registry_.histogram("serve_replica_grpc_latency_ms",
                           "Time from receiving a gRPC call to answering it, in milliseconds.",
                           {"application", "deployment", "method"}, metrics::latencyBucketsMs());
  bad_requests_ = &registry_.counter("serve_replica_bad_requests_total",
                                     "Requests refused for bad input, by reason.",
                                     {"application", "deployment", "reason"});
}

ReplicaMetrics::RequestSeries ReplicaMetrics::findSeries(
    const std::string& key, metrics::Family<metrics::Counter>& counts,
    std::vector<std::string> count_labels, metrics::Family<metrics::Histogram>& latency,
    std::vector<std::string> latency_labels) {
  // Family::with() builds a label vector and searches a map under a mutex; on the request path
  // the children are looked up once per label set and reused.
  {
    std::shared_lock lock(series_mu_);
    auto it = series_.find(key);
    if (it != series_.end()) {
      return it->second;
    }
  }
  RequestSeries series{};
  series.count = &counts.with(count_labels);
  series.latency = &latency.with(latency_labels);
  std::unique_lock lock(series_mu_);
  series_.emplace(key, series);
  return series;
}

void ReplicaMetrics::recordRequest(const std::string& route, const std::string& method, int status,
                                   double latency_ms) {
  std::string key;
  key.reserve(route.size() + method.size() + 8);
  key.append(route).append(1, '\0').append(method).append(1, '\0').append(std::to_string(status));
  RequestSeries series = findSeries(
      key, *requests_, {application_, deployment_, route, method, std::to_string(status)},
      *latency_, {application_, deployment_, route});
  series.count->inc();
  series.latency->observe(latency_ms);
}

void ReplicaMetrics::recordGrpcRequest(const std::string& method, const std::string& code,
                                       double latency_ms) {
  // '\1' first: HTTP routes start with '/', so the two kinds of key never collide.
  std::string key = "\1" + method + '\0' + code;
  RequestSeries series = findSeries(key, *grpc_requests_, {application_, deployment_, method, code},
                                    *grpc_latency_, {application_, deployment_, method});
  series.count->inc();
  series.latency->observe(latency_ms);
}

void ReplicaMetrics::setBackend(const std::string& backend) {
  registry_
      .gauge("serve_model_backend_info", "1 for the back end the model's forward passes run on.",
             {"application", "deployment", "backend"})
      .with({application_, deployment_, backend})
      .set(1);
}

void ReplicaMetrics::recordBadRequest(const std::string& reason) {
  bad_requests_->with({application_, deployment_, reason}).inc();
}

}  // namespace serve
