// Ingress request metrics end to end, once per available HAProxy version: a config rendered by
// the real renderer from the shipped templates, with the ingress log socket set; the
// IngressLogReceiver bound on it; HAProxy started by HaproxyController; a cpp-httplib server in
// the test standing in for a replica. Requests go through HAProxy with libcurl and the metrics
// must count each exactly, under the right labels.
#include <doctest/doctest.h>
#include <httplib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "common/file_util.h"
#include "haproxy-manager/diff/differ.h"
#include "haproxy-manager/haproxy/haproxy_process.h"
#include "haproxy-manager/ingress/ingress_log_receiver.h"
#include "haproxy-manager/ingress/ingress_metrics.h"
#include "haproxy-manager/render/renderer.h"
#include "tests/integration/grpc_fixture.h"
#include "tests/support/haproxy_binaries.h"
#include "tests/support/http_client.h"
#include "tests/support/replica_process.h"
#include "tests/unit/haproxy-manager/table_builders.h"

namespace serve::manager {
namespace {

using serve::testing::freeLoopbackPort;
using serve::testing::haproxyBinaries;
using serve::testing::HaproxyBinary;
using serve::testing::httpRequest;
using serve::testing::infer;
using serve::testing::inferenceStub;
using serve::testing::metricValue;
using serve::testing::ModelInferRequest;
using serve::testing::TempDir;
using serve::testing::typedRequest;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

bool eventually(const std::function<bool()>& condition, milliseconds timeout = milliseconds(5000)) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

Templates shippedTemplates() {
  StatusOr<Templates> t = loadTemplates(std::string(SERVE_SOURCE_DIR) + "/templates");
  REQUIRE_MESSAGE(t.ok(), messageOf(t.status()));
  return *t;
}

// The stand-in replica: KServe infer and health on loopback; GET /slow answers after a second.
class Origin {
 public:
  Origin() {
    auto ok = [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{}", "application/json");
    };
    server_.Post(R"(/v2/models/[^/]+/infer)", ok);
    server_.Get("/-/healthz", ok);
    server_.Get("/app/sub", ok);
    server_.Get("/app/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      res.set_content("late", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Origin() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

// `app` at /app with the origin in slot 1 and `empty` at /empty with no replica, rendered into
// `dir` with the ingress log socket set, and a gRPC listener (whose answers here are HAProxy's).
RoutingTable ingressTable(const std::string& dir, int origin_port) {
  RoutingTable t = testing::table({
      testing::backend("app", "/app", {testing::active("app-1", origin_port)}, 4),
      testing::backend("empty", "/empty", {}, 2),
  });
  GlobalSettings& g = t.global;
  g.admin_socket = dir + "/admin.sock";
  g.state_dir = dir;
  g.ingress_log_socket = dir + "/ingress.sock";
  g.http_host = "127.0.0.1";
  g.http_port = freeLoopbackPort();
  g.grpc_port = freeLoopbackPort();
  g.metrics_port = freeLoopbackPort();
  g.stats_port = freeLoopbackPort();
  g.control_port = freeLoopbackPort();
  g.maxconn = 1000;
  g.nbthread = 2;
  g.hard_stop_after_s = 5;
  return t;
}

void writeRendered(const RoutingTable& table, const std::string& config_path) {
  StatusOr<RenderedConfig> rendered = render(table, shippedTemplates());
  REQUIRE_MESSAGE(rendered.ok(), messageOf(rendered.status()));
  for (const auto& [name, content] : rendered->files) {
    std::ofstream(statePath(table.global, name), std::ios::binary) << content;
  }
  std::ofstream(config_path, std::ios::binary) << rendered->config;
}

std::unique_ptr<HaproxyController> startHaproxy(const HaproxyBinary& binary,
                                                const std::string& dir) {
  HaproxyOptions options;
  options.binary = binary.path;
  options.config_path = dir + "/haproxy.cfg";
  options.admin_socket_path = dir + "/admin.sock";
  options.log_dir = dir + "/logs";
  options.startup_timeout_s = 10;
  auto noEnv = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  StatusOr<std::unique_ptr<HaproxyController>> created =
      HaproxyController::create(std::move(options), noEnv);
  REQUIRE_MESSAGE(created.ok(), messageOf(created.status()));
  const Status started = (*created)->start();
  REQUIRE_MESSAGE(started.ok(), messageOf(started));
  return std::move(*created);
}

std::string grpcLabels(const std::string& application, const std::string& method,
                       const std::string& code) {
  return "{application=\"" + application + "\",method=\"" + method + "\",code=\"" + code + "\"}";
}

std::string labels(const std::string& application, const std::string& route,
                   const std::string& method, const std::string& status) {
  return "{application=\"" + application + "\",route=\"" + route + "\",method=\"" + method +
         "\",status=\"" + status + "\"}";
}

TEST_CASE("ingress log: every request through HAProxy is counted under its labels") {
  for (const HaproxyBinary& binary : haproxyBinaries()) {
    CAPTURE(binary.version);
    TempDir dir;
    Origin origin;
    const RoutingTable table = ingressTable(dir.path(), origin.port());
    writeRendered(table, dir.path() + "/haproxy.cfg");

    IngressMetrics metrics;
    IngressLogReceiver receiver(table.global.ingress_log_socket, metrics);
    const Status bound = receiver.start();
    REQUIRE_MESSAGE(bound.ok(), messageOf(bound));
    std::unique_ptr<HaproxyController> haproxy = startHaproxy(binary, dir.path());

    const std::string base = "http://127.0.0.1:" + std::to_string(table.global.http_port);
    const std::string body = R"({"inputs":[]})";
    for (int i = 0; i < 3; ++i) {
      CHECK(httpRequest("POST", base + "/app", body).status == 200);
    }
    for (int i = 0; i < 2; ++i) {
      CHECK(httpRequest("POST", base + "/v2/models/app/infer", body).status == 200);
    }
    CHECK(httpRequest("GET", base + "/app/sub?x=1").status == 200);
    CHECK(httpRequest("GET", base + "/nowhere").status == 404);
    CHECK(httpRequest("GET", base + "/-/healthz").status == 200);
    CHECK(httpRequest("GET", base + "/-/routes").status == 200);
    CHECK(httpRequest("POST", base + "/empty", body).status == 503);
    CHECK(httpRequest("PURGE", base + "/nowhere").status == 404);  // not a standard method
    // The client gives up before the origin answers: recorded as 499.
    CHECK(httpRequest("GET", base + "/app/slow", "", {}, milliseconds(300)).status == 0);
    // gRPC calls HAProxy answers itself: no application named, an unknown one, none up.
    auto stub = inferenceStub(table.global.grpc_port);
    const ModelInferRequest call = typedRequest("m", {1}, {1});
    CHECK(infer(*stub, call).status.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(infer(*stub, call, seconds(10), {{"application", "nope"}}).status.error_code() ==
          grpc::StatusCode::NOT_FOUND);
    CHECK(infer(*stub, call, seconds(10), {{"application", "empty"}}).status.error_code() ==
          grpc::StatusCode::UNAVAILABLE);
    constexpr std::uint64_t kRequests = 15;

    const auto count = [&](const std::string& series) {
      return metricValue(metrics.serialize(), series);
    };
    REQUIRE_MESSAGE(eventually([&] { return receiver.datagrams() >= kRequests; }),
                    metrics.serialize());
    std::this_thread::sleep_for(milliseconds(200));  // nothing more may arrive
    CHECK(receiver.datagrams() == kRequests);
    const std::string text = metrics.serialize();
    CAPTURE(text);

    const std::string app_post = labels("app", "/app", "POST", "200");
    CHECK(count("serve_num_http_requests" + app_post) == 3);
    CHECK(count("serve_http_request_latency_ms_count" + app_post) == 3);
    CHECK(count("serve_num_http_error_requests" + app_post) == -1);  // no such series
    CHECK(count("serve_num_http_requests" + labels("app", "/v2/models/app", "POST", "200")) == 2);
    CHECK(count("serve_num_http_requests" + labels("app", "/app", "GET", "200")) == 1);
    CHECK(count("serve_num_http_requests" + labels("-", "-", "GET", "404")) == 1);
    CHECK(count("serve_num_http_error_requests" + labels("-", "-", "GET", "404")) == 1);
    CHECK(count("serve_num_http_requests" + labels("-", "/-/healthz", "GET", "200")) == 1);
    CHECK(count("serve_num_http_requests" + labels("-", "/-/routes", "GET", "200")) == 1);
    CHECK(count("serve_num_http_requests" + labels("empty", "/empty", "POST", "503")) == 1);
    CHECK(count("serve_num_http_error_requests" + labels("empty", "/empty", "POST", "503")) == 1);
    CHECK(count("serve_num_http_requests" + labels("-", "-", "OTHER", "404")) == 1);
    const std::string aborted = labels("app", "/app", "GET", "499");
    CHECK(count("serve_num_http_requests" + aborted) == 1);
    CHECK(count("serve_num_http_error_requests" + aborted) == 1);
    // %Ta of the abandoned request: from its first byte until the client's 300 ms were up.
    CHECK(count("serve_http_request_latency_ms_sum" + aborted) >= 250);
    CHECK(count("serve_http_request_latency_ms_sum" + aborted) < 1000);
    const std::string infer_path = "/inference.GRPCInferenceService/ModelInfer";
    CHECK(count("serve_num_grpc_requests" + grpcLabels("-", infer_path, "NOT_FOUND")) == 2);
    CHECK(count("serve_num_grpc_error_requests" + grpcLabels("-", infer_path, "NOT_FOUND")) == 2);
    CHECK(count("serve_num_grpc_requests" + grpcLabels("empty", infer_path, "UNAVAILABLE")) == 1);
    CHECK(count("serve_grpc_request_latency_ms_count" +
                grpcLabels("empty", infer_path, "UNAVAILABLE")) == 1);
    CHECK(count("serve_ingress_log_errors_total") == 0);

    // A prefix change at runtime, as the differ plans it: the route label follows, no reload.
    RoutingTable moved = table;
    moved.backends[0].route_prefix = "/app2";
    const Plan plan = diff(table, moved);
    REQUIRE(plan.reload_reasons.empty());
    const Status applied = applyCommands(haproxy->admin(), plan.commands);
    REQUIRE_MESSAGE(applied.ok(), messageOf(applied));
    CHECK(httpRequest("POST", base + "/app2", body).status == 200);
    CHECK(httpRequest("POST", base + "/app", body).status == 404);
    REQUIRE(eventually([&] { return receiver.datagrams() >= kRequests + 2; }));
    CHECK(count("serve_num_http_requests" + labels("app", "/app2", "POST", "200")) == 1);
    CHECK(count("serve_num_http_requests" + labels("-", "-", "POST", "404")) == 1);
    CHECK(count("serve_num_http_requests" + app_post) == 3);

    haproxy.reset();  // stops HAProxy: its "Proxy http stopped" notice is not an error
    receiver.stop();
    CHECK(count("serve_ingress_log_errors_total") == 0);
    CHECK(count("serve_num_http_requests" + app_post) == 3);
    struct stat st {};
    CHECK(::lstat(table.global.ingress_log_socket.c_str(), &st) != 0);  // removed
  }
}

TEST_CASE("ingress log: the receiver replaces a stale socket and refuses a live one") {
  TempDir dir;
  const std::string path = dir.path() + "/ingress.sock";
  IngressMetrics metrics;
  {
    IngressLogReceiver first(path, metrics);
    REQUIRE(first.start().ok());
    IngressLogReceiver second(path, metrics);
    const Status refused = second.start();
    CHECK(absl::IsFailedPrecondition(refused));
    CHECK(messageOf(refused).find("another process receives") != std::string::npos);
  }
  // A socket file nobody receives on, as a manager killed with SIGKILL leaves it.
  {
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    ::close(fd);
  }
  IngressLogReceiver receiver(path, metrics);
  const Status started = receiver.start();
  REQUIRE_MESSAGE(started.ok(), messageOf(started));
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  // A datagram sent by path is read and parsed; garbage is counted.
  const int sender = ::socket(AF_UNIX, SOCK_DGRAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
  for (const std::string line : {"<134>serve1 http-a /a 200 4 -- \"GET\"\n", "garbage"}) {
    REQUIRE(::sendto(sender, line.data(), line.size(), 0, reinterpret_cast<sockaddr*>(&address),
                     sizeof(address)) == static_cast<ssize_t>(line.size()));
  }
  ::close(sender);
  REQUIRE(eventually([&] { return receiver.datagrams() == 2; }));
  const std::string text = metrics.serialize();
  CHECK(metricValue(text, "serve_num_http_requests" + labels("a", "/a", "GET", "200")) == 1);
  CHECK(metricValue(text, "serve_ingress_log_errors_total") == 1);

  // A path that is not a socket is never removed.
  const std::string file = dir.write("plain.txt", "keep me");
  IngressLogReceiver wrong(file, metrics);
  CHECK(absl::IsFailedPrecondition(wrong.start()));
  CHECK(readWholeFile(file, "file").value() == "keep me");
}

}  // namespace
}  // namespace serve::manager
