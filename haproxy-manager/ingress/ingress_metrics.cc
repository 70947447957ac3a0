#include "haproxy-manager/ingress/ingress_metrics.h"

#include <algorithm>
#include <vector>

namespace serve::manager {

namespace {

const std::vector<std::string> kLabels = {"application", "route", "method", "status"};

int statusOf(const IngressRecord& record) {
  if (record.client_aborted) {
    return kClientClosedStatus;
  }
  return record.status >= 100 && record.status <= 599 ? record.status : 0;
}

bool isError(int status) { return status >= 400 || status == 0; }

}  // namespace

std::array<std::string, 4> ingressLabels(const IngressRecord& record) {
  const bool standard = std::find(kStandardMethods.begin(), kStandardMethods.end(),
                                  record.method) != kStandardMethods.end();
  return {record.application, record.route, standard ? record.method : kOtherMethod,
          std::to_string(statusOf(record))};
}

IngressMetrics::IngressMetrics()
    : requests_(registry_.counter("serve_num_http_requests",
                                  "HTTP requests through HAProxy's :8000 frontend, from its "
                                  "per-request log",
                                  kLabels)),
      errors_(registry_.counter("serve_num_http_error_requests",
                                "HTTP requests answered with status >= 400 (499: the client "
                                "closed first) or with no status at all (0)",
                                kLabels)),
      latency_(registry_.histogram("serve_http_request_latency_ms",
                                   "HTTP request latency in HAProxy, from the first byte of the "
                                   "request to the last byte of the response (%Ta)",
                                   kLabels, metrics::latencyBucketsMs())),
      log_errors_(registry_
                      .counter("serve_ingress_log_errors_total",
                               "Datagrams on the ingress log socket that were not request lines "
                               "of the expected format")
                      .with()) {}

void IngressMetrics::record(const IngressRecord& record) {
  std::array<std::string, 4> labels = ingressLabels(record);
  Series series;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = series_.find(labels);
    if (it == series_.end()) {
      const std::vector<std::string> values(labels.begin(), labels.end());
      Series created{&requests_.with(values), nullptr, &latency_.with(values)};
      if (isError(std::stoi(labels[3]))) {
        created.errors = &errors_.with(values);
      }
      it = series_.emplace(std::move(labels), created).first;
    }
    series = it->second;
  }
  series.requests->inc();
  if (series.errors != nullptr) {
    series.errors->inc();
  }
  series.latency->observe(static_cast<double>(record.latency_ms));
}

}  // namespace serve::manager
