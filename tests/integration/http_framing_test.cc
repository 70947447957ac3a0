// Hostile framing against the replica's HTTP server, as raw bytes on one connection: every
// request the server cannot frame is answered once with the exact status and the connection is
// closed, so that bytes after it (here a valid inference request, "the hidden request") never
// reach the model. Through HAProxy too, where a desync would be request smuggling.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/integration/manager_fixture.h"
#include "tests/integration/replica_fixture.h"
#include "tests/support/haproxy_binaries.h"

namespace serve::testing {
namespace {

const std::string kInferBody =
    R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]})";
const std::string kHidden = "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                            std::to_string(kInferBody.size()) + "\r\n\r\n" + kInferBody;

const std::string kModelRequests =
    "serve_model_requests_total{application=\"app\",deployment=\"d\"}";

struct Case {
  std::string name;
  std::string bytes;
  std::vector<int> statuses;  // what the client sees, in order
  std::string body;           // the last answer's body ends with this
};

// The patterns, each followed by the hidden request; `limit` is the replica's --max-body-bytes.
std::vector<Case> hostileCases(std::size_t limit) {
  const std::string big(limit + 1, 'a');
  char chunk_size[32];
  std::snprintf(chunk_size, sizeof(chunk_size), "%zx", big.size());
  return {
      {"malformed request line", "GARBAGE\r\n\r\n" + kHidden, {400}, R"({"error":"Bad request."})"},
      {"bad chunk size",
       "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "ZZ\r\nabc\r\n0\r\n\r\n" +
           kHidden,
       {400},
       R"({"error":"Bad request: the body could not be read."})"},
      {"Content-Length with Transfer-Encoding",
       "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
           kHidden,
       {400},
       R"({"error":"Content-Length and Transfer-Encoding in one request are not allowed."})"},
      {"a coding other than chunked",
       "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
       "5\r\nhello\r\n0\r\n\r\n" +
           kHidden,
       {501},
       R"({"error":"Transfer-Encoding other than chunked is not supported."})"},
      {"two different Content-Lengths",
       "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
       "Content-Length: 4\r\n\r\nabcd" +
           kHidden,
       {400},
       R"({"error":"Content-Length headers with different values."})"},
      {"a Content-Length that is not a number",
       "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd" + kHidden,
       {400},
       R"({"error":"Content-Length must be a decimal number."})"},
      {"a declared body over the limit (the hidden request inside it)",
       "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: " +
           std::to_string(limit + 1) + "\r\n\r\n" + kHidden,
       {413},
       R"({"error":"Request body is larger than the limit."})"},
      {"a chunked body growing over the limit",
       "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
           std::string(chunk_size) + "\r\n" + big + "\r\n0\r\n\r\n" + kHidden,
       {413},
       R"({"error":"Request body is larger than the limit."})"},
      {"a GET whose body is the hidden request",
       "GET /v2/models/echo HTTP/1.1\r\nHost: x\r\nContent-Length: " +
           std::to_string(kHidden.size()) + "\r\n\r\n" + kHidden,
       {400},
       R"({"error":"GET requests must not carry a body."})"},
      {"an OPTIONS with a chunked body",
       "OPTIONS /v2/models/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
           absl::StrCat(absl::Hex(kHidden.size())) + "\r\n" + kHidden + "\r\n0\r\n\r\n",
       {400},
       R"({"error":"OPTIONS requests must not carry a body."})"},
      {"a header line over the library's limit",
       "GET /-/healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n" +
           kHidden,
       {400},
       R"({"error":"Bad request."})"},
  };
}

TEST_CASE("replica: a request it cannot frame is answered once and its connection closed") {
  constexpr std::size_t kLimit = 4096;
  auto r = startReplica({}, {"--max-body-bytes", std::to_string(kLimit)});
  for (const Case& c : hostileCases(kLimit)) {
    CAPTURE(c.name);
    const RawExchange ex = rawExchange(r->port(), c.bytes);
    INFO(ex.text);
    CHECK(ex.statuses == c.statuses);
    CHECK(ex.closed);
    CHECK(ex.text.ends_with(c.body));
  }
  // None of the hidden requests reached the model; a well-formed one does, on a kept connection.
  CHECK(metric(*r, kModelRequests) == 0);
  const RawExchange twice =
      rawExchange(r->port(), kHidden + kHidden, std::chrono::milliseconds(500));
  CHECK(twice.statuses == std::vector<int>{200, 200});
  CHECK_FALSE(twice.closed);
  CHECK(metric(*r, kModelRequests) == 2);
}

TEST_CASE("replica: a body that stops arriving is a 408, a silent connection is closed") {
  auto r = startReplica({}, {"--request-read-timeout-s", "1"});
  const RawExchange stalled = rawExchange(
      r->port(), "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
      std::chrono::seconds(4));
  CHECK(stalled.statuses == std::vector<int>{408});
  CHECK(stalled.closed);
  CHECK(stalled.text.ends_with("Request not received in time.\n"));
  // A connection that never sends a byte is closed after request_read_timeout, not after the
  // keep-alive time (95 s here): idle sockets cannot pile up and hold threads.
  const auto start = std::chrono::steady_clock::now();
  const RawExchange silent = rawExchange(r->port(), "", std::chrono::seconds(4));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(silent.statuses.empty());
  CHECK(silent.closed);
  CHECK(seconds < 2.5);
}

TEST_CASE(
    "replica: a JSON body sent the way curl -d sends it (form-encoded, over 8 KB) is accepted") {
  auto r = startReplica({});
  // 64 KB of JSON with curl's default Content-Type for -d.
  std::string data = "[";
  for (int i = 0; i < 16000; ++i) {
    data += (i ? ",1" : "1");
  }
  data += "]";
  const std::string body =
      R"({"inputs":[{"name":"x","shape":[16000],"datatype":"FP32","data":)" + data + "}]}";
  REQUIRE(body.size() > 8192);
  const HttpResult res = httpPost(r->url("/v2/models/echo/infer"), body,
                                  {{"Content-Type", "application/x-www-form-urlencoded"}});
  INFO(res.body.substr(0, 200));
  CHECK(res.status == 200);
  CHECK(res.body.find(R"("shape":[16000])") != std::string::npos);
  // multipart/form-data is refused with a message saying what to do, and the connection closed.
  const RawExchange multipart = rawExchange(
      r->port(),
      "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
      "boundary=b\r\nContent-Length: 4\r\n\r\nabcd");
  CHECK(multipart.statuses == std::vector<int>{415});
  CHECK(multipart.closed);
  CHECK(multipart.text.ends_with(
      R"({"error":"multipart/form-data bodies are not supported; send the file as the body."})"));
}

TEST_CASE("replica: a client's bytes in the access log are escaped") {
  // Each access-log line written at once (it is buffered by default).
  auto r = startReplica({}, {}, {{"RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE", "1"}});
  // %-escapes the server decodes: an escape sequence that would drive a terminal, spaces that
  // would forge the status and latency fields, a tab. (A decoded newline never reaches a
  // handler: the library answers 404 itself and the connection closes.)
  const RawExchange ex =
      rawExchange(r->port(), "GET /x%1b[31m%20200%200.1ms%09tab HTTP/1.1\r\nHost: x\r\n\r\n",
                  std::chrono::milliseconds(500));
  CHECK(ex.statuses == std::vector<int>{404});
  INFO(r->output());
  CHECK(eventually([&] {
    return r->output().find("GET /x\\x1b[31m\\x20200\\x200.1ms\\x09tab 404 ") != std::string::npos;
  }));
  CHECK(r->output().find('\x1b') == std::string::npos);
}

TEST_CASE("node: framing attacks through HAProxy never reach the model") {
  for (const HaproxyBinary& haproxy : haproxyBinaries()) {
    CAPTURE(haproxy.version);
    auto m = startNode(oneAppConfig("model: {kind: noop, name: echo}"), "",
                       {{"RAY_SERVE_HAPROXY_BINARY_PATH", haproxy.path}});
    REQUIRE(eventually([&] { return allServing(*m, "app", 1); }, std::chrono::seconds(30)));
    // The replica behind HAProxy, and its count of requests that reached the model.
    const nlohmann::json status = m->status();
    REQUIRE(status["processes"].size() == 1);
    const int replica_port = status["processes"][0]["http_port"].get<int>();
    const auto modelRequests = [&] {
      return metricValue(
          httpGet("http://127.0.0.1:" + std::to_string(replica_port) + "/metrics").body,
          kModelRequests);
    };
    REQUIRE(modelRequests() == 0);
    struct Attack {
      std::string name;
      std::string bytes;
      int status;  // the one answer: HAProxy refuses each of these itself
      // HAProxy closes the client's connection (it could not frame the request); where it
      // framed it and only the replica refused it, the client's connection may stay open.
      bool closes = true;
    };
    const std::string hidden =
        "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: " +
        std::to_string(kInferBody.size()) + "\r\n\r\n" + kInferBody;
    const std::vector<Attack> attacks = {
        {"a coding other than chunked",
         "POST /app HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello"
         "\r\n0\r\n\r\n" +
             hidden,
         422},
        {"a bad chunk size",
         "POST /app HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n" + hidden, 400},
        {"a malformed request line", "GET /app HTTP/1.1 extra\r\nHost: x\r\n\r\n" + hidden, 400},
        {"two different Content-Lengths",
         "POST /app HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd" +
             hidden,
         400},
        // HAProxy forwards this one: a GET may carry a body. The replica refuses it and
        // closes, instead of reading the body as a second request HAProxy never saw.
        {"a GET whose body is a request",
         "GET /app HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(hidden.size()) +
             "\r\n\r\n" + hidden,
         400, false},
    };
    for (const Attack& a : attacks) {
      CAPTURE(a.name);
      const RawExchange ex = rawExchange(m->httpPort(), a.bytes);
      INFO(ex.text);
      CHECK(ex.statuses == std::vector<int>{a.status});  // the hidden request got no answer
      CHECK(ex.closed == a.closes);
    }
    // A body over the replica's limit passes HAProxy; the replica refuses it and closes, so
    // the request inside it is never read as one.
    const std::string over_limit =
        "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\n"
        "Transfer-Encoding: chunked\r\n\r\n" +
        std::string("1000001\r\n") + std::string(16777217, 'a') + "\r\n0\r\n\r\n";
    const RawExchange big = rawExchange(m->httpPort(), over_limit, std::chrono::seconds(5));
    CHECK(big.statuses == std::vector<int>{413});
    CHECK(modelRequests() == 0);
    // The legitimate request itself does reach it, once.
    const RawExchange ok = rawExchange(m->httpPort(), hidden, std::chrono::milliseconds(500));
    INFO(ok.text);
    CHECK(ok.statuses == std::vector<int>{200});
    CHECK(modelRequests() == 1);
  }
}

}  // namespace
}  // namespace serve::testing
