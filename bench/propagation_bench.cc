// Propagation latency of the manager: from a replica's registration to the first request that
// HAProxy routes to it, measured end to end through the real haproxy-manager, HAProxy and
// serve-replica on loopback. Baseline in the same run: the same kind of change made through a
// validated reload (a deploy that adds an application, until its route answers), which is how
// systems that reload on every membership change propagate it.
//
// usage: propagation_bench [--haproxy PATH] [--iterations N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "common/cli.h"
#include "tests/support/http_client.h"
#include "tests/support/manager_process.h"
#include "tests/support/replica_process.h"

namespace {

using serve::testing::eventually;
using serve::testing::httpGet;
using serve::testing::httpPost;
using serve::testing::HttpResult;
using Clock = std::chrono::steady_clock;

const char kConfig[] =
    "http_options: {host: 127.0.0.1, port: {{HTTP_PORT}}}\n"
    "applications:\n"
    "  - name: app\n"
    "    route_prefix: /app\n"
    "    deployments:\n"
    "      - {name: d, model: {kind: noop, name: echo}}\n";
const char kExtraApp[] =
    "  - name: extra\n"
    "    route_prefix: /extra\n"
    "    deployments:\n"
    "      - {name: e, model: {kind: noop, name: extra}}\n";
const std::string kBody = R"({"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[1]}]})";

double msSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

struct Summary {
  double p50, p90, p99, max;
};

Summary summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(q * v.size()))];
  };
  return {at(0.50), at(0.90), at(0.99), v.back()};
}

bool waitForStatus(const std::string& url, long status, bool post) {
  return eventually([&] { return (post ? httpPost(url, kBody) : httpGet(url)).status == status; },
                    std::chrono::seconds(10));
}

}  // namespace

int main(int argc, char** argv) {
  std::string haproxy;
  int iterations = 100;
  CLI::App app(
      "propagation_bench: a replica's registration -> first routed request, through the real\n"
      "haproxy-manager, HAProxy and serve-replica, against a validated reload (markdown table).",
      "propagation_bench");
  app.add_option("--haproxy", haproxy, "the HAProxy binary (default: the tests' choice)")
      ->type_name("PATH");
  app.add_option("--iterations", iterations, "registrations measured, 1-1000000 (default 100)")
      ->type_name("N")
      ->transform(serve::cli::integerIn(1, 1000000));
  serve::cli::readInOrder(app);
  const serve::cli::ParseResult parsed =
      serve::cli::parse(app, std::vector<std::string>(argv + 1, argv + argc));
  if (parsed.help) {
    std::cout << app.help();
    return 0;
  }
  if (!parsed.ok()) {
    std::cerr << "propagation_bench: " << parsed.error
              << "\nRun `propagation_bench --help` for usage.\n";
    return 2;
  }
  serve::testing::ManagerTestOptions options;
  options.config_yaml = kConfig;
  options.haproxy_binary = haproxy;
  options.env = {{"RAY_SERVE_LOG_TO_STDERR", "0"}};
  serve::testing::ManagerProcess manager(options);
  if (!manager.start()) {
    std::cerr << "manager did not start:\n" << manager.output();
    return 1;
  }
  std::string replica_config = kConfig;
  replica_config.replace(replica_config.find("{{HTTP_PORT}}"), 13, "8000");
  auto replica = serve::testing::startTestReplica(replica_config, "app");
  if (replica == nullptr) {
    std::cerr << "replica did not start\n";
    return 1;
  }
  const std::string url = manager.url("/app");

  // Runtime API: register -> first routed request; then deregister and wait for the slot.
  std::vector<double> runtime;
  std::vector<double> register_call;
  for (int i = 0; i < iterations + 5; ++i) {
    const auto t0 = Clock::now();
    const HttpResult reg =
        manager.registerReplica("app", "d", replica->port(), "r", replica->pid());
    const double call = msSince(t0);
    if (reg.status != 200 || !waitForStatus(url, 200, true)) {
      std::cerr << "registration " << i << " failed: " << reg.body << "\n";
      return 1;
    }
    const double total = msSince(t0);
    if (i >= 5) {  // the first few warm up connections and caches
      runtime.push_back(total);
      register_call.push_back(call);
    }
    manager.deregister("r");
    if (!waitForStatus(url, 503, true)) {
      std::cerr << "deregistration " << i << " did not take effect\n";
      return 1;
    }
  }

  // Reload baseline: deploy an extra application, until HAProxy routes its prefix.
  const int reload_iterations = std::max(10, iterations / 5);
  std::vector<double> reload;
  const std::string with_extra = std::string(kConfig) + kExtraApp;
  for (int i = 0; i < reload_iterations; ++i) {
    const auto t0 = Clock::now();
    const HttpResult added = manager.deploy(with_extra);
    if (added.status != 200 || !waitForStatus(manager.url("/extra"), 503, true)) {
      std::cerr << "deploy " << i << " failed: " << added.body << "\n";
      return 1;
    }
    reload.push_back(msSince(t0));
    manager.deploy(kConfig);
    waitForStatus(manager.url("/extra"), 404, true);
  }

  const Summary r = summarize(runtime);
  const Summary c = summarize(register_call);
  const Summary l = summarize(reload);
  std::printf("| path | samples | p50 ms | p90 ms | p99 ms | max ms |\n");
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  std::printf(
      "| runtime API: register -> first routed request | %zu | %.2f | %.2f | %.2f | %.2f |\n",
      runtime.size(), r.p50, r.p90, r.p99, r.max);
  std::printf("| (of which the register call) | %zu | %.2f | %.2f | %.2f | %.2f |\n",
              register_call.size(), c.p50, c.p90, c.p99, c.max);
  std::printf(
      "| reload: deploy new app -> first routed request | %zu | %.2f | %.2f | %.2f | %.2f |\n",
      reload.size(), l.p50, l.p90, l.p99, l.max);
  std::printf("\nreload p50 / runtime p50 = %.1fx; runtime p99 %s 100 ms\n", l.p50 / r.p50,
              r.p99 < 100 ? "<" : ">=");
  return 0;
}
