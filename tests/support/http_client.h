#pragma once

// A small libcurl client for integration tests: one request, full response back.
#include <chrono>
#include <map>
#include <string>

namespace serve::testing {

struct HttpResult {
  long status = 0;  // 0 when no response came (curl_error says why)
  std::string body;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string curl_error;
  double seconds = 0;  // total time
};

HttpResult httpRequest(const std::string& method, const std::string& url,
                       const std::string& body = "",
                       const std::map<std::string, std::string>& headers = {},
                       std::chrono::milliseconds timeout = std::chrono::seconds(10));

inline HttpResult httpGet(const std::string& url) { return httpRequest("GET", url); }
inline HttpResult httpPost(const std::string& url, const std::string& body,
                           const std::map<std::string, std::string>& headers = {}) {
  return httpRequest("POST", url, body, headers);
}

// The value of one sample in Prometheus text, e.g. metricValue(text,
// "serve_model_requests_total{application=\"app\",deployment=\"d\"}"); -1 when absent.
double metricValue(const std::string& metrics_text, const std::string& series);

}  // namespace serve::testing
