#pragma once

// A small libcurl client for integration tests: one request, full response back.
#include <chrono>
#include <map>
#include <string>
#include <vector>

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

namespace serve::testing {

// What a server answered to raw bytes on one TCP connection: the status code of every response
// in order, everything it sent, and whether it closed the connection within the wait.
struct RawExchange {
  std::vector<int> statuses;
  std::string text;
  bool closed = false;
};

// Connects to 127.0.0.1:`port`, writes `bytes` as they are, then reads until the server closes
// or `wait` passes with nothing new.
// A TCP connection to 127.0.0.1:`port`, or -1. The caller closes it.
int connectLoopback(int port);

RawExchange rawExchange(int port, const std::string& bytes,
                        std::chrono::milliseconds wait = std::chrono::milliseconds(1500));

}  // namespace serve::testing
