// Drain on SIGTERM, forced stop, port selection, and bad input of every kind.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "tests/integration/replica_fixture.h"

using namespace serve::testing;

namespace {

// A listening loopback socket held by the test, to make a port busy.
struct BusyPort {
  int fd = -1;
  explicit BusyPort(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 1) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ~BusyPort() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  bool ok() const { return fd >= 0; }
};

// A base port whose next `n` ports can all be held by the test.
int busyRange(int n, std::vector<std::unique_ptr<BusyPort>>& held) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    int base = 20000 + (freeLoopbackPort() % 20000);
    held.clear();
    bool all = true;
    for (int i = 0; i < n && all; ++i) {
      held.push_back(std::make_unique<BusyPort>(base + i));
      all = held.back()->ok();
    }
    if (all) {
      return base;
    }
  }
  return -1;
}

int rawConnect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

TEST_CASE("drain: SIGTERM turns health DRAINING, finishes in-flight work, closes, exits 0") {
  auto r = startReplica({.kind = "sleep", .sleep_ms = 500, .max_ongoing = 1},
                        {"--draining-period-s", "0.4"});
  std::vector<HttpResult> inflight(2);
  std::vector<std::thread> threads;
  threads.emplace_back([&] { inflight[0] = httpPost(r->url("/echo"), inferBody(1)); });
  REQUIRE(waitForMetric(*r, series("serve_replica_ongoing_requests"), 1));
  threads.emplace_back([&] { inflight[1] = httpPost(r->url("/echo"), inferBody(2)); });
  REQUIRE(waitForMetric(*r, series("serve_replica_queued_requests"), 1));

  r->signal(SIGTERM);
  bool draining = false;
  for (int i = 0; i < 50 && !draining; ++i) {
    auto h = httpGet(r->url("/-/healthz"));
    draining = h.status == 503 && h.body == "DRAINING";
  }
  CHECK(draining);
  CHECK(httpGet(r->url("/v2/health/ready")).status == 503);
  CHECK(httpGet(r->url("/v2/health/live")).status == 200);

  for (auto& t : threads) {
    t.join();
  }
  CHECK(inflight[0].status == 200);
  CHECK(inflight[1].status == 200);
  auto code = r->wait(std::chrono::seconds(10));
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(r->output().find(R"({"event":"stopped"})") != std::string::npos);
  // The listener is gone: new connections are refused.
  CHECK(rawConnect(r->port()) == -1);
  auto after = httpGet(r->url("/-/healthz"));
  CHECK(after.status == 0);
}

TEST_CASE("drain: requests keep being served during the draining period") {
  // A draining period far longer than the 100 ms the test waits, so a loaded machine cannot
  // push the request past it.
  auto r = startReplica({}, {"--draining-period-s", "3"});
  r->signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto res = httpPost(r->url("/echo"), inferBody(5));
  CHECK(res.status == 200);
  CHECK(httpGet(r->url("/-/healthz")).body == "DRAINING");
  auto code = r->wait(std::chrono::seconds(10));
  REQUIRE(code.has_value());
  CHECK(*code == 0);
}

TEST_CASE("drain: a second signal stops at once and reports what it abandons") {
  auto r = startReplica({.kind = "sleep", .sleep_ms = 3000, .max_ongoing = 1},
                        {"--draining-period-s", "5"});
  std::thread t(
      [&] { httpRequest("POST", r->url("/echo"), inferBody(1), {}, std::chrono::seconds(6)); });
  REQUIRE(waitForMetric(*r, series("serve_replica_ongoing_requests"), 1));
  r->signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  r->signal(SIGINT);
  auto code = r->wait(std::chrono::seconds(5));
  REQUIRE(code.has_value());
  CHECK(*code == 1);
  CHECK(r->output().find(R"({"event":"abandoned","ongoing":1,"queued":0})") != std::string::npos);
  t.join();
}

TEST_CASE("ports: the first free port in the range is taken, busy ones are skipped") {
  std::vector<std::unique_ptr<BusyPort>> held;
  int base = busyRange(2, held);
  REQUIRE(base > 0);
  held.pop_back();  // base+1 is free again; base stays busy
  ReplicaOptions o;
  o.config_yaml = testConfig({});
  o.pass_http_port = false;
  o.env = {{"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", std::to_string(base)},
           {"RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT", std::to_string(base + 5)}};
  ReplicaProcess r(o);
  REQUIRE(r.start());
  CHECK(r.port() == base + 1);
  CHECK(httpGet(r.url("/-/healthz")).body == "success");
}

TEST_CASE("ports: an exhausted range is a clear error and a non-zero exit") {
  std::vector<std::unique_ptr<BusyPort>> held;
  int base = busyRange(2, held);
  REQUIRE(base > 0);
  ReplicaOptions o;
  o.config_yaml = testConfig({});
  o.pass_http_port = false;
  o.env = {{"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", std::to_string(base)},
           {"RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT", std::to_string(base + 2)}};
  ReplicaProcess r(o);
  CHECK_FALSE(r.start());
  auto code = r.wait(std::chrono::seconds(5));
  REQUIRE(code.has_value());
  CHECK(*code == 1);
  std::string range = "[" + std::to_string(base) + ", " + std::to_string(base + 2) + ")";
  CHECK(r.output().find("no free HTTP port in " + range + " on 127.0.0.1 after 2 attempts") !=
        std::string::npos);
}

TEST_CASE("ports: an explicit port that is taken is an error naming the flag") {
  std::vector<std::unique_ptr<BusyPort>> held;
  int base = busyRange(1, held);
  REQUIRE(base > 0);
  ReplicaOptions o;
  o.config_yaml = testConfig({});
  o.pass_http_port = false;
  o.extra_args = {"--http-port", std::to_string(base)};
  ReplicaProcess r(o);
  CHECK_FALSE(r.start());
  CHECK(r.wait(std::chrono::seconds(5)) == 1);
  CHECK(r.output().find("--http-port=" + std::to_string(base) + ": cannot bind") !=
        std::string::npos);
}

TEST_CASE("bad input: each gets its status code and message, and is counted") {
  auto r = startReplica({}, {"--max-body-bytes", "2048"});
  struct Case {
    std::string name, method, path, body;
    std::map<std::string, std::string> headers;
    long status;
    std::string expected_body;
    std::string reason;
  };
  std::vector<Case> cases = {
      {"malformed json",
       "POST",
       "/echo",
       "{not json",
       {},
       400,
       R"J({"error":"malformed JSON body"})J",
       "malformed_json"},
      {"shape mismatch",
       "POST",
       "/echo",
       R"({"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3]}]})",
       {},
       400,
       R"J({"error":"input 'x': shape [2,2] has 4 elements but data has 3"})J",
       "invalid_input"},
      {"bad datatype",
       "POST",
       "/echo",
       R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP16X","data":[1]}]})",
       {},
       400,
       R"J({"error":"input 'x': datatype 'FP16X' is not supported (BOOL, UINT8-64, INT8-64, FP32, FP64)"})J",
       "invalid_input"},
      {"wrong element type",
       "POST",
       "/echo",
       R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":["a"]}]})",
       {},
       400,
       R"J({"error":"input 'x': data[0] = \"a\" is not a valid FP32"})J",
       "invalid_input"},
      {"unknown model",
       "POST",
       "/v2/models/nope/infer",
       inferBody(1),
       {},
       404,
       R"J({"error":"Unknown model 'nope'; this replica serves 'echo'"})J",
       "unknown_model"},
      {"wrong method",
       "GET",
       "/v2/models/echo/infer",
       "",
       {},
       405,
       R"J({"error":"Method GET is not allowed on /v2/models/echo/infer; allowed: POST"})J",
       "method_not_allowed"},
      {"non-numeric timeout",
       "POST",
       "/echo",
       inferBody(1),
       {{"x-request-timeout-seconds", "soon"}},
       400,
       R"J({"error":"x-request-timeout-seconds: 'soon' is not a number of seconds"})J",
       "bad_timeout_header"},
      {"body too large",
       "POST",
       "/echo",
       std::string(4096, ' '),
       {},
       413,
       R"J({"error":"Request body is larger than the limit."})J",
       "body_too_large"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto res = httpRequest(c.method, r->url(c.path), c.body, c.headers);
    CHECK(res.status == c.status);
    CHECK(res.body == c.expected_body);
    CHECK(metric(*r, series("serve_replica_bad_requests_total", "reason=\"" + c.reason + "\"")) >=
          1);
  }
  CHECK(metric(*r, series("serve_replica_bad_requests_total", "reason=\"invalid_input\"")) == 3);
  CHECK(httpRequest("DELETE", r->url("/-/healthz")).headers["allow"] == "GET");
  // Still serving.
  CHECK(httpPost(r->url("/echo"), inferBody(1)).status == 200);
  CHECK(metric(*r, series("serve_model_requests_total")) == 1);
}

TEST_CASE("bad input: a client dribbling its headers gets 408 and does not block others") {
  auto r = startReplica({}, {"--request-read-timeout-s", "0.5"});
  int fd = rawConnect(r->port());
  REQUIRE(fd >= 0);
  timeval tv{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const std::string partial = "GET /-/healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  auto start = std::chrono::steady_clock::now();
  std::string reply;
  for (char c : partial) {
    ::send(fd, &c, 1, MSG_NOSIGNAL);
    // Others are served while this client is stuck.
    if (c == '\n') {
      CHECK(httpGet(r->url("/-/healthz")).status == 200);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  char buf[512];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
    reply.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(reply.starts_with("HTTP/1.1 408 Request Timeout\r\n"));
  CHECK(reply.ends_with("\r\n\r\nRequest not received in time.\n"));
  CHECK(seconds < 2.0);
  CHECK(metric(*r, series("serve_replica_request_read_timeouts_total")) == 1);
}

TEST_CASE("bad flags and environment exit non-zero naming the flag and the range") {
  struct Case {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    int code;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"--http-port", "70000"},
       {},
       2,
       "--http-port: expected an integer in [0, 65535], got '70000'"},
      {{"--watchdog-timeout-s", "x"},
       {},
       2,
       "--watchdog-timeout-s: expected a number in [0, 86400] (0 = off), got 'x'"},
      {{"--bogus", "1"}, {}, 2, "unknown flag '--bogus'"},
      {{},
       {{"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "abc"}},
       2,
       "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT=abc: expected"},
      {{"--deployment", "missing"},
       {},
       1,
       "--deployment=missing: no such deployment in application 'app'"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.message);
    ReplicaOptions o;
    o.config_yaml = testConfig({});
    o.extra_args = c.args;
    o.env = c.env;
    o.pass_http_port = false;
    ReplicaProcess r(o);
    CHECK_FALSE(r.start());
    CHECK(r.wait(std::chrono::seconds(5)) == c.code);
    CHECK(r.output().find(c.message) != std::string::npos);
  }
}

TEST_CASE("--help documents every flag") {
  ReplicaOptions o;
  o.config_yaml = testConfig({});
  o.extra_args = {"--help"};
  ReplicaProcess r(o);
  CHECK_FALSE(r.start());
  CHECK(r.wait(std::chrono::seconds(5)) == 0);
  for (const char* flag :
       {"--config", "--app", "--deployment", "--http-port", "--host", "--port-file",
        "--max-body-bytes", "--http-max-threads", "--request-read-timeout-s",
        "--watchdog-timeout-s", "--draining-period-s", "--log-dir"}) {
    CAPTURE(flag);
    CHECK(r.output().find(flag) != std::string::npos);
  }
}
