#include "haproxy-manager/ingress/ingress_metrics.h"

#include <doctest/doctest.h>

#include <string>

namespace serve::manager {
namespace {

IngressRecord rec(std::string application, std::string route, std::string method, int status,
                  std::int64_t latency_ms = 0, bool client_aborted = false) {
  return IngressRecord{
      std::move(application), std::move(route), std::move(method), status, latency_ms,
      client_aborted};
}

bool has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST_CASE("ingress metrics: nothing recorded yet is only the headers and the error count") {
  IngressMetrics metrics;
  CHECK(metrics.serialize() ==
        "# HELP serve_num_http_requests HTTP requests through HAProxy's HTTP frontend, from its "
        "per-request log\n"
        "# TYPE serve_num_http_requests counter\n"
        "# HELP serve_num_http_error_requests HTTP requests answered with status >= 400 (499: "
        "the client closed first) or with no status at all (0)\n"
        "# TYPE serve_num_http_error_requests counter\n"
        "# HELP serve_http_request_latency_ms HTTP request latency in HAProxy, from the first "
        "byte of the request to the last byte of the response (%Ta)\n"
        "# TYPE serve_http_request_latency_ms histogram\n"
        "# HELP serve_num_grpc_requests gRPC calls through HAProxy's gRPC frontend, from its "
        "per-call log\n"
        "# TYPE serve_num_grpc_requests counter\n"
        "# HELP serve_num_grpc_error_requests gRPC calls that ended with a code other than OK\n"
        "# TYPE serve_num_grpc_error_requests counter\n"
        "# HELP serve_grpc_request_latency_ms gRPC call latency in HAProxy, from the first byte "
        "of the call to the last byte of the answer (%Ta)\n"
        "# TYPE serve_grpc_request_latency_ms histogram\n"
        "# HELP serve_ingress_log_errors_total Datagrams on the ingress log socket that were not "
        "request lines of the expected format\n"
        "# TYPE serve_ingress_log_errors_total counter\n"
        "serve_ingress_log_errors_total 0\n");
}

TEST_CASE("ingress metrics: requests, errors and latency per application, route, method, status") {
  IngressMetrics metrics;
  metrics.record(rec("app", "/app", "POST", 200, 1));
  metrics.record(rec("app", "/app", "POST", 200, 2));
  metrics.record(rec("app", "/app", "POST", 200, 30));
  metrics.record(rec("-", "-", "GET", 404));
  metrics.record(rec("app", "/app", "GET", 503, 7));
  metrics.record(rec("app", "/v2/models/m", "POST", 302));
  const std::string text = metrics.serialize();
  CAPTURE(text);

  const std::string post = "{application=\"app\",route=\"/app\",method=\"POST\",status=\"200\"}";
  CHECK(has(text, "serve_num_http_requests" + post + " 3"));
  CHECK(has(text,
            "serve_num_http_requests{application=\"-\",route=\"-\",method=\"GET\","
            "status=\"404\"} 1"));
  CHECK(has(text,
            "serve_num_http_requests{application=\"app\",route=\"/app\",method=\"GET\","
            "status=\"503\"} 1"));
  CHECK(has(text,
            "serve_num_http_requests{application=\"app\",route=\"/v2/models/m\","
            "method=\"POST\",status=\"302\"} 1"));

  // 4xx and 5xx are errors, as in Ray Serve's proxy; 2xx and 3xx have no error series at all.
  CHECK(has(text,
            "serve_num_http_error_requests{application=\"-\",route=\"-\",method=\"GET\","
            "status=\"404\"} 1"));
  CHECK(has(text,
            "serve_num_http_error_requests{application=\"app\",route=\"/app\","
            "method=\"GET\",status=\"503\"} 1"));
  CHECK(text.find("serve_num_http_error_requests" + post) == std::string::npos);
  CHECK(text.find("serve_num_http_error_requests{application=\"app\",route=\"/v2/models/m\"") ==
        std::string::npos);

  const std::string le =
      "serve_http_request_latency_ms_bucket{application=\"app\",route=\"/app\","
      "method=\"POST\",status=\"200\",le=";
  CHECK(has(text, le + "\"0.5\"} 0"));
  CHECK(has(text, le + "\"1\"} 1"));
  CHECK(has(text, le + "\"2.5\"} 2"));
  CHECK(has(text, le + "\"25\"} 2"));
  CHECK(has(text, le + "\"50\"} 3"));
  CHECK(has(text, le + "\"+Inf\"} 3"));
  CHECK(has(text, "serve_http_request_latency_ms_sum" + post + " 33"));
  CHECK(has(text, "serve_http_request_latency_ms_count" + post + " 3"));
  CHECK(has(text, "serve_ingress_log_errors_total 0"));
}

TEST_CASE("ingress metrics: client aborts are 499, no status is 0, both errors") {
  IngressMetrics metrics;
  metrics.record(rec("app", "/app", "GET", 200, 12, /*client_aborted=*/true));
  metrics.record(rec("silent", "/v2/models/silent", "GET", 400, 500, /*client_aborted=*/true));
  metrics.record(rec("-", "-", "<BADREQ>", 0));
  metrics.record(rec("app", "/app", "GET", -1));
  metrics.record(rec("app", "/app", "GET", 600));
  const std::string text = metrics.serialize();
  CAPTURE(text);
  CHECK(has(text,
            "serve_num_http_requests{application=\"app\",route=\"/app\",method=\"GET\","
            "status=\"499\"} 1"));
  CHECK(has(text,
            "serve_num_http_error_requests{application=\"silent\","
            "route=\"/v2/models/silent\",method=\"GET\",status=\"499\"} 1"));
  CHECK(has(text,
            "serve_num_http_error_requests{application=\"-\",route=\"-\",method=\"OTHER\","
            "status=\"0\"} 1"));
  CHECK(has(text,
            "serve_num_http_error_requests{application=\"app\",route=\"/app\","
            "method=\"GET\",status=\"0\"} 2"));
}

TEST_CASE("ingress metrics: methods outside the standard set are OTHER") {
  for (const char* method :
       {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}) {
    CHECK(ingressLabels(rec("a", "/a", method, 200))[2] == method);
  }
  for (const char* method : {"get", "PURGE|#231", "<BADREQ>", "", "GET ", "PROPFIND"}) {
    CAPTURE(method);
    CHECK(ingressLabels(rec("a", "/a", method, 200))[2] == "OTHER");
  }
  CHECK(ingressLabels(rec("a", "/a", "GET", 204)) ==
        std::array<std::string, 4>{"a", "/a", "GET", "204"});
}

// A gRPC call as parseIngressLog gives it.
IngressRecord call(std::string application, std::string path, int status, int grpc_status,
                   std::int64_t latency_ms = 0, bool client_aborted = false) {
  IngressRecord r =
      rec(std::move(application), std::move(path), "", status, latency_ms, client_aborted);
  r.protocol = IngressProtocol::kGrpc;
  r.grpc_status = grpc_status;
  return r;
}

TEST_CASE("ingress metrics: gRPC calls by application, method and code") {
  IngressMetrics metrics;
  const std::string infer = "/inference.GRPCInferenceService/ModelInfer";
  metrics.record(call("app", infer, 200, -1, 3));  // completed: OK
  metrics.record(call("app", infer, 200, -1, 4));
  metrics.record(call("app", infer, 200, 8, 1));               // RESOURCE_EXHAUSTED
  metrics.record(call("-", infer, 200, 5));                    // HAProxy's NOT_FOUND
  metrics.record(call("app", infer, 503, -1));                 // HAProxy's 503 page
  metrics.record(call("app", infer, 200, -1, 9, true));        // the client went first
  metrics.record(call("app", "/my.Service/Method", 200, 12));  // not a known method
  metrics.record(call("app", "-", 200, 12));                   // not a gRPC path
  metrics.record(call("app", "/grpc.health.v1.Health/Check", 200, -1));
  const std::string text = metrics.serialize();
  CAPTURE(text);

  auto labels = [](const std::string& app, const std::string& method, const std::string& code) {
    return "{application=\"" + app + "\",method=\"" + method + "\",code=\"" + code + "\"}";
  };
  CHECK(has(text, "serve_num_grpc_requests" + labels("app", infer, "OK") + " 2"));
  CHECK(has(text, "serve_grpc_request_latency_ms_sum" + labels("app", infer, "OK") + " 7"));
  CHECK(has(text, "serve_num_grpc_requests" + labels("app", infer, "RESOURCE_EXHAUSTED") + " 1"));
  CHECK(has(text,
            "serve_num_grpc_error_requests" + labels("app", infer, "RESOURCE_EXHAUSTED") + " 1"));
  CHECK(has(text, "serve_num_grpc_error_requests" + labels("-", infer, "NOT_FOUND") + " 1"));
  CHECK(has(text, "serve_num_grpc_error_requests" + labels("app", infer, "UNAVAILABLE") + " 1"));
  CHECK(has(text, "serve_num_grpc_error_requests" + labels("app", infer, "CANCELLED") + " 1"));
  CHECK(has(text, "serve_num_grpc_requests" + labels("app", "OTHER", "UNIMPLEMENTED") + " 1"));
  CHECK(has(text, "serve_num_grpc_requests" + labels("app", "-", "UNIMPLEMENTED") + " 1"));
  CHECK(has(text, "serve_num_grpc_requests" + labels("app", "/grpc.health.v1.Health/Check", "OK") +
                      " 1"));
  // OK is never an error, and gRPC calls are not HTTP requests.
  CHECK(text.find("serve_num_grpc_error_requests" + labels("app", infer, "OK")) ==
        std::string::npos);
  CHECK(text.find("serve_num_http_requests{") == std::string::npos);
}

TEST_CASE(
    "ingress metrics: the gRPC code of an answer without grpc-status follows its HTTP status") {
  CHECK(grpcCodeOf(call("a", "-", 200, 0)) == "OK");
  CHECK(grpcCodeOf(call("a", "-", 200, 16)) == "UNAUTHENTICATED");
  CHECK(grpcCodeOf(call("a", "-", 200, 14, 0, true)) == "UNAVAILABLE");  // the header wins
  CHECK(grpcCodeOf(call("a", "-", 400, -1)) == "INTERNAL");
  CHECK(grpcCodeOf(call("a", "-", 401, -1)) == "UNAUTHENTICATED");
  CHECK(grpcCodeOf(call("a", "-", 403, -1)) == "PERMISSION_DENIED");
  CHECK(grpcCodeOf(call("a", "-", 404, -1)) == "UNIMPLEMENTED");
  for (int status : {429, 502, 503, 504}) {
    CHECK(grpcCodeOf(call("a", "-", status, -1)) == "UNAVAILABLE");
  }
  CHECK(grpcCodeOf(call("a", "-", 408, -1)) == "UNKNOWN");
  CHECK(grpcCodeOf(call("a", "-", 0, -1)) == "UNKNOWN");
}

TEST_CASE("ingress metrics: unparseable lines are counted") {
  IngressMetrics metrics;
  metrics.recordUnparseable();
  metrics.recordUnparseable();
  CHECK(has(metrics.serialize(), "serve_ingress_log_errors_total 2"));
}

}  // namespace
}  // namespace serve::manager
