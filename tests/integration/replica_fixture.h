#pragma once

// Shared pieces of the replica integration tests: configs for the built-in test models and a
// started replica.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <thread>

#include "tests/support/http_client.h"
#include "tests/support/replica_process.h"

namespace serve::testing {

struct TestDeployment {
  std::string kind = "noop";  // noop | sleep
  int sleep_ms = 0;
  int max_ongoing = 5;
  int max_queued = -1;
  int max_batch = 1;
  double batch_wait_s = 0;
  double request_timeout_s = 0;
};

inline std::string testConfig(const TestDeployment& d) {
  std::string model = "{kind: " + d.kind + ", name: echo";
  if (d.kind == "sleep") {
    model += ", sleep_ms: " + std::to_string(d.sleep_ms);
  }
  model += "}";
  return "http_options: {request_timeout_s: " + std::to_string(d.request_timeout_s) +
         "}\n"
         "applications:\n"
         "  - name: app\n"
         "    route_prefix: /echo\n"
         "    deployments:\n"
         "      - name: d\n"
         "        max_ongoing_requests: " +
         std::to_string(d.max_ongoing) + "\n" +
         "        max_queued_requests: " + std::to_string(d.max_queued) + "\n" +
         "        model: " + model + "\n" +
         "        batching: {max_batch_size: " + std::to_string(d.max_batch) +
         ", batch_wait_timeout_s: " + std::to_string(d.batch_wait_s) + "}\n";
}

inline std::unique_ptr<ReplicaProcess> startReplica(const TestDeployment& d,
                                                    std::vector<std::string> extra_args = {},
                                                    std::map<std::string, std::string> env = {}) {
  ReplicaOptions o;
  o.config_yaml = testConfig(d);
  o.extra_args = std::move(extra_args);
  o.env = std::move(env);
  auto r = std::make_unique<ReplicaProcess>(o);
  bool started = r->start();
  INFO(r->output());
  REQUIRE(started);
  return r;
}

// A one-tensor FP32 infer body whose single value identifies the caller.
inline std::string inferBody(float value) {
  return R"({"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[)" +
         std::to_string(value).substr(0, std::to_string(value).find('.')) + "]}]}";
}

inline std::string series(const std::string& name, const std::string& extra_labels = "") {
  return name + "{application=\"app\",deployment=\"d\"" +
         (extra_labels.empty() ? "" : "," + extra_labels) + "}";
}

inline std::string requestsSeries(const std::string& route, const std::string& method, int status) {
  return series("serve_replica_http_requests_total", "route=\"" + route + "\",method=\"" + method +
                                                         "\",status=\"" + std::to_string(status) +
                                                         "\"");
}

inline double metric(ReplicaProcess& r, const std::string& s) {
  return metricValue(httpGet(r.url("/metrics")).body, s);
}

// Waits until a metric reaches `want` (the replica's own view of its state).
inline bool waitForMetric(ReplicaProcess& r, const std::string& s, double want,
                          std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (metric(r, s) == want) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

}  // namespace serve::testing
