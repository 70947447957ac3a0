#pragma once

// Shared pieces of the manager integration tests: a real haproxy-manager (and so a real
// HAProxy) on free loopback ports, real serve-replica processes, and a client that keeps
// sending requests in the background and counts what came back.
#include <doctest/doctest.h>
#include <stdio.h>
#include <sys/wait.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/haproxy_binaries.h"
#include "tests/support/http_client.h"
#include "tests/support/manager_process.h"
#include "tests/support/replica_process.h"

namespace serve::testing {

// Two applications: `app` (noop) at /app and `slow` (sleep) at /slow.
inline std::string managerConfig(int slow_ms = 1500, double request_timeout_s = 30,
                                 const std::string& app_prefix = "/app",
                                 const std::string& extra_apps = "") {
  return "http_options: {host: 127.0.0.1, port: {{HTTP_PORT}}, request_timeout_s: " +
         std::to_string(request_timeout_s) +
         "}\n"
         "applications:\n"
         "  - name: app\n"
         "    route_prefix: " +
         app_prefix +
         "\n"
         "    deployments:\n"
         "      - {name: d, max_ongoing_requests: 8, model: {kind: noop, name: echo}}\n"
         "  - name: slow\n"
         "    route_prefix: /slow\n"
         "    deployments:\n"
         "      - {name: s, max_ongoing_requests: 4, model: {kind: sleep, sleep_ms: " +
         std::to_string(slow_ms) + ", name: sleeper}}\n" + extra_apps;
}

// The same file as replicas read it (they never bind the HAProxy port).
inline std::string replicaConfig(const std::string& manager_config) {
  std::string out = manager_config;
  const std::string placeholder = "{{HTTP_PORT}}";
  out.replace(out.find(placeholder), placeholder.size(), "8000");
  return out;
}

inline const std::string kInferBody =
    R"({"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[7]}]})";
inline const std::string kEchoReply =
    "\"outputs\":[{\"name\":\"x\",\"datatype\":\"FP32\","
    "\"shape\":[1,1],\"data\":[7]}]}";

inline std::unique_ptr<ManagerProcess> startManager(const std::string& config,
                                                    const std::string& haproxy_binary = "",
                                                    std::map<std::string, std::string> env = {}) {
  ManagerTestOptions o;
  o.config_yaml = config;
  o.haproxy_binary = haproxy_binary;
  o.env = std::move(env);
  auto m = std::make_unique<ManagerProcess>(o);
  const bool started = m->start();
  INFO(m->output());
  REQUIRE(started);
  return m;
}

// A replica of `app` started from the manager's config and registered with the manager.
inline std::unique_ptr<ReplicaProcess> addReplica(ManagerProcess& m, const std::string& config,
                                                  const std::string& app,
                                                  const std::string& deployment,
                                                  const std::string& id) {
  auto r = startTestReplica(replicaConfig(config), app);
  REQUIRE(r != nullptr);
  const HttpResult reg = m.registerReplica(app, deployment, r->port(), id, r->pid());
  INFO(reg.body, reg.curl_error, "\nmanager output:\n", m.output());
  REQUIRE(reg.status == 200);
  return r;
}

inline double modelRequests(ReplicaProcess& r, const std::string& app = "app",
                            const std::string& deployment = "d") {
  return metricValue(
      httpGet(r.url("/metrics")).body,
      "serve_model_requests_total{application=\"" + app + "\",deployment=\"" + deployment + "\"}");
}

// Active slots of an application in the manager's status.
inline int activeSlots(ManagerProcess& m, const std::string& app) {
  int n = 0;
  const nlohmann::json status = m.status();  // keep it alive for the loop
  for (const auto& a : status["applications"]) {
    if (a["name"] == app) {
      for (const auto& slot : a["slots"]) {
        n += slot["state"] == "active" ? 1 : 0;
      }
    }
  }
  return n;
}

// Occupied (active or draining) slots of an application.
inline int occupiedSlots(ManagerProcess& m, const std::string& app) {
  const nlohmann::json status = m.status();
  for (const auto& a : status["applications"]) {
    if (a["name"] == app) {
      return static_cast<int>(a["slots"].size());
    }
  }
  return -1;
}

// Runs a shell command; its exit status and everything it printed (stderr included).
inline std::pair<int, std::string> runShell(const std::string& command) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buf[4096];
  std::size_t n = 0;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) {
    out.append(buf, n);
  }
  const int rc = ::pclose(pipe);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

// Makes calls in a loop on `threads` threads until stopped, and counts their outcomes. `call`
// gets the thread's index and returns the outcome and, for a failure, a line saying what
// happened; `success` is the outcome that is not a failure.
template <typename Outcome>
class BackgroundLoad {
 public:
  using Call = std::function<std::pair<Outcome, std::string>(int thread)>;

  BackgroundLoad(Outcome success, int threads, Call call) : success_(success) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this, call, i] {
        while (!stop_) {
          auto [outcome, what] = call(i);
          std::lock_guard<std::mutex> lock(mu_);
          ++outcomes_[outcome];
          if (outcome != success_ && failures_.size() < 5) {
            failures_.push_back(std::move(what));
          }
        }
      });
    }
  }
  ~BackgroundLoad() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) {
        t.join();
      }
    }
  }
  long count(Outcome outcome) {
    std::lock_guard<std::mutex> lock(mu_);
    return outcomes_[outcome];
  }
  long ok() { return count(success_); }
  long total() {
    std::lock_guard<std::mutex> lock(mu_);
    long n = 0;
    for (const auto& [outcome, c] : outcomes_) {
      n += c;
    }
    return n;
  }
  long failed() { return total() - ok(); }
  std::string failures() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& f : failures_) {
      out += f + "\n";
    }
    return out;
  }

 private:
  const Outcome success_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::map<Outcome, long> outcomes_;
  std::vector<std::string> failures_;
};

// POSTs kInferBody to `url` in a loop; outcomes are HTTP statuses (0: no answer).
class BackgroundClient : public BackgroundLoad<long> {
 public:
  explicit BackgroundClient(const std::string& url, int threads = 1)
      : BackgroundLoad(200, threads, [url](int) {
          const HttpResult r = httpPost(url, kInferBody);
          return std::pair<long, std::string>(
              r.status, std::to_string(r.status) + " " + r.curl_error + " " + r.body);
        }) {}
};

// ---- Nodes whose manager runs the replicas itself (supervise) ----

// One application `app` at /app whose deployment `d` is `deployment` (a YAML flow mapping body).
inline std::string oneAppConfig(const std::string& deployment) {
  return "http_options: {host: 127.0.0.1, port: {{HTTP_PORT}}}\n"
         "applications:\n"
         "  - name: app\n"
         "    route_prefix: /app\n"
         "    deployments:\n"
         "      - {name: d, " +
         deployment + "}\n";
}

inline std::unique_ptr<ManagerProcess> startNode(const std::string& config_yaml,
                                                 const std::string& config_path = "",
                                                 std::map<std::string, std::string> env = {}) {
  ManagerTestOptions o;
  o.config_yaml = config_yaml;
  o.config_path = config_path;
  o.supervise = true;
  o.env = std::move(env);
  o.env.emplace("RAY_SERVE_LOG_TO_STDERR", "0");
  auto m = std::make_unique<ManagerProcess>(o);
  const bool started = m->start(std::chrono::seconds(30));
  INFO(m->output());
  REQUIRE(started);
  return m;
}

// The supervisor's view of one application's replicas: id -> (state, pid).
inline std::map<std::string, std::pair<std::string, int>> processes(ManagerProcess& m,
                                                                    const std::string& app) {
  std::map<std::string, std::pair<std::string, int>> out;
  const nlohmann::json status = m.status();
  for (const auto& p : status["processes"]) {
    if (p["application"] == app) {
      out[p["replica_id"].get<std::string>()] = {p["state"].get<std::string>(),
                                                 p["pid"].get<int>()};
    }
  }
  return out;
}

inline bool allServing(ManagerProcess& m, const std::string& app, std::size_t n) {
  const auto ps = processes(m, app);
  if (ps.size() != n) {
    return false;
  }
  for (const auto& [id, p] : ps) {
    if (p.first != "serving") {
      return false;
    }
  }
  return activeSlots(m, app) == static_cast<int>(n);
}

}  // namespace serve::testing
