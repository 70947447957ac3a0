#include "haproxy-manager/ingress/ingress_metrics.h"

#include <algorithm>
#include <vector>

namespace serve::manager {

namespace {

const std::vector<std::string> kLabels = {"application", "route", "method", "status"};
const std::vector<std::string> kGrpcLabels = {"application", "method", "code"};

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

std::string grpcCodeOf(const IngressRecord& record) {
  // grpc::StatusCode names, by number.
  static constexpr std::array<const char*, 17> kNames = {"OK",
                                                         "CANCELLED",
                                                         "UNKNOWN",
                                                         "INVALID_ARGUMENT",
                                                         "DEADLINE_EXCEEDED",
                                                         "NOT_FOUND",
                                                         "ALREADY_EXISTS",
                                                         "PERMISSION_DENIED",
                                                         "RESOURCE_EXHAUSTED",
                                                         "FAILED_PRECONDITION",
                                                         "ABORTED",
                                                         "OUT_OF_RANGE",
                                                         "UNIMPLEMENTED",
                                                         "INTERNAL",
                                                         "UNAVAILABLE",
                                                         "DATA_LOSS",
                                                         "UNAUTHENTICATED"};
  if (record.grpc_status >= 0 && record.grpc_status < static_cast<int>(kNames.size())) {
    return kNames[static_cast<std::size_t>(record.grpc_status)];
  }
  if (record.client_aborted) {
    return "CANCELLED";
  }
  switch (record.status) {
    case 200:
      return "OK";
    case 400:
      return "INTERNAL";
    case 401:
      return "UNAUTHENTICATED";
    case 403:
      return "PERMISSION_DENIED";
    case 404:
      return "UNIMPLEMENTED";
    case 429:
    case 502:
    case 503:
    case 504:
      return "UNAVAILABLE";
    default:
      return "UNKNOWN";
  }
}

std::array<std::string, 3> grpcIngressLabels(const IngressRecord& record) {
  const bool known =
      std::find(kGrpcMethods.begin(), kGrpcMethods.end(), record.route) != kGrpcMethods.end();
  return {record.application, known || record.route == kNoLabel ? record.route : kOtherMethod,
          grpcCodeOf(record)};
}

IngressMetrics::IngressMetrics()
    : http_{registry_.counter("serve_num_http_requests",
                              "HTTP requests through HAProxy's HTTP frontend, from its "
                              "per-request log",
                              kLabels),
            registry_.counter("serve_num_http_error_requests",
                              "HTTP requests answered with status >= 400 (499: the client "
                              "closed first) or with no status at all (0)",
                              kLabels),
            registry_.histogram("serve_http_request_latency_ms",
                                "HTTP request latency in HAProxy, from the first byte of the "
                                "request to the last byte of the response (%Ta)",
                                kLabels, metrics::latencyBucketsMs())},
      grpc_{registry_.counter("serve_num_grpc_requests",
                              "gRPC calls through HAProxy's gRPC frontend, from its per-call log",
                              kGrpcLabels),
            registry_.counter("serve_num_grpc_error_requests",
                              "gRPC calls that ended with a code other than OK", kGrpcLabels),
            registry_.histogram("serve_grpc_request_latency_ms",
                                "gRPC call latency in HAProxy, from the first byte of the call to "
                                "the last byte of the answer (%Ta)",
                                kGrpcLabels, metrics::latencyBucketsMs())},
      log_errors_(registry_
                      .counter("serve_ingress_log_errors_total",
                               "Datagrams on the ingress log socket that were not request lines "
                               "of the expected format")
                      .with()) {}

template <std::size_t N>
void IngressMetrics::observe(Families& families,
                             std::map<std::array<std::string, N>, Series>& known,
                             std::array<std::string, N> labels, bool error,
                             std::int64_t latency_ms) {
  Series series;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = known.find(labels);
    if (it == known.end()) {
      const std::vector<std::string> values(labels.begin(), labels.end());
      Series created{&families.requests.with(values), nullptr, &families.latency.with(values)};
      if (error) {
        created.errors = &families.errors.with(values);
      }
      it = known.emplace(std::move(labels), created).first;
    }
    series = it->second;
  }
  series.requests->inc();
  if (series.errors != nullptr) {
    series.errors->inc();
  }
  series.latency->observe(static_cast<double>(latency_ms));
}

void IngressMetrics::record(const IngressRecord& record) {
  if (record.protocol == IngressProtocol::kGrpc) {
    std::array<std::string, 3> labels = grpcIngressLabels(record);
    const bool error = labels[2] != "OK";
    observe(grpc_, grpc_series_, std::move(labels), error, record.latency_ms);
    return;
  }
  std::array<std::string, 4> labels = ingressLabels(record);
  const bool error = isError(statusOf(record));
  observe(http_, http_series_, std::move(labels), error, record.latency_ms);
}

}  // namespace serve::manager
