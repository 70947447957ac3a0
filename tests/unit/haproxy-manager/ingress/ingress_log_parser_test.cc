#include "haproxy-manager/ingress/ingress_log_parser.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/file_util.h"

namespace serve::manager {
namespace {

// The datagrams of tests/testdata/haproxy/ingress_log_<version>.txt, written by
// capture_ingress_log.sh: one per line, each with its "\n".
std::vector<std::string> capturedDatagrams(const std::string& version) {
  const std::string path =
      std::string(SERVE_TESTDATA_DIR) + "/haproxy/ingress_log_" + version + ".txt";
  StatusOr<std::string> text = readWholeFile(path, "captured datagrams");
  REQUIRE_MESSAGE(text.ok(), messageOf(text.status()));
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text->size()) {
    const std::size_t end = text->find('\n', start);
    REQUIRE(end != std::string::npos);
    out.push_back(text->substr(start, end + 1 - start));
    start = end + 1;
  }
  return out;
}

IngressRecord rec(std::string application, std::string route, std::string method, int status,
                  std::int64_t latency_ms, bool client_aborted = false) {
  return IngressRecord{
      std::move(application), std::move(route), std::move(method), status, latency_ms,
      client_aborted};
}

TEST_CASE("ingress log parser: the datagrams of real HAProxy 2.6 and 2.8") {
  struct Version {
    std::string name;
    std::int64_t http2_refused_ms;  // the only active times that differ between the captures
    std::int64_t client_gave_up_ms;
  };
  for (const Version& v : {Version{"2.6", 2, 501}, Version{"2.8", 0, 500}}) {
    CAPTURE(v.name);
    const std::vector<std::string> datagrams = capturedDatagrams(v.name);
    const std::vector<IngressRecord> expected = {
        rec("digits", "/digits", "POST", 200, 0),
        rec("digits", "/digits", "GET", 200, 0),           // below the prefix
        rec("-", "-", "GET", 404, 0),                      // HAProxy's not_found backend
        rec("-", "/-/healthz", "GET", 200, 0),             // answered by the frontend: %b is "http"
        rec("empty", "/empty", "GET", 503, 0),             // no replica
        rec("digits", "/digits", "PURGE|#231", 200, 0),    // the client's "PURGE|#1"
        rec("digits", "/digits", "GET", 200, 0),           // HTTP/2
        rec("-", "-", "<BADREQ>", 0, v.http2_refused_ms),  // HTTP/2 method "A B": no status
        rec("silent", "/v2/models/silent", "GET", 400, v.client_gave_up_ms, true),  // CH
        rec("-", "-", "<BADREQ>", 400, 0),             // G"ET: not HTTP
        rec("digits", "/digits", "<BADREQ>", 200, 0),  // a 2000-byte method: beyond the capture
    };
    REQUIRE(datagrams.size() == expected.size() + 1);
    for (std::size_t i = 0; i < expected.size(); ++i) {
      CAPTURE(datagrams[i]);
      StatusOr<IngressRecord> got = parseIngressLog(datagrams[i]);
      REQUIRE_MESSAGE(got.ok(), messageOf(got.status()));
      CHECK(*got == expected[i]);
    }
    // The old worker's "Proxy http stopped (...)" at the reload, severity warning.
    CHECK(datagrams.back().rfind("<132>Proxy http stopped", 0) == 0);
    CHECK(absl::IsNotFound(parseIngressLog(datagrams.back()).status()));
  }
}

TEST_CASE("ingress log parser: the method runs to the last quote, and a cut line loses it") {
  StatusOr<IngressRecord> spaced = parseIngressLog("<134>serve1 http-a /a 200 3 -- \"A B\"C\"");
  REQUIRE(spaced.ok());
  CHECK(spaced->method == "A B\"C");
  CHECK(spaced->latency_ms == 3);

  StatusOr<IngressRecord> cut = parseIngressLog("<134>serve1 http-a /a 200 3 -- \"MMMMMMMM");
  REQUIRE(cut.ok());
  CHECK(cut->method.empty());
  CHECK(cut->application == "a");

  StatusOr<IngressRecord> lone = parseIngressLog("<134>serve1 http-a /a 200 3 -- \"");
  REQUIRE(lone.ok());
  CHECK(lone->method.empty());
}

TEST_CASE("ingress log parser: fields and their edge values") {
  StatusOr<IngressRecord> r = parseIngressLog("<134>serve1 http-a.b_c-d / -1 -1 CD \"GET\"\n");
  REQUIRE(r.ok());
  CHECK(*r == rec("a.b_c-d", "/", "GET", -1, 0, true));  // -1 ms: not measured

  // Another facility is still a request line: only the severity matters.
  CHECK(parseIngressLog("<22>serve1 http-a /a 200 0 -- \"GET\"").ok());
  // "http-" alone or another backend name is not an application.
  CHECK(parseIngressLog("<134>serve1 http- - 503 0 SC \"GET\"")->application == "-");
  CHECK(parseIngressLog("<134>serve1 manager_metrics - 200 0 -- \"GET\"")->application == "-");
  // Lower-case 'c' is a client timeout, not an abort.
  CHECK_FALSE(parseIngressLog("<134>serve1 http-a /a 408 0 cR \"GET\"")->client_aborted);
}

TEST_CASE("ingress log parser: HAProxy's own lines are NotFound, broken ones InvalidArgument") {
  for (const char* line : {"<132>Proxy http stopped (cumulated conns: FE: 6, BE: 0).\n",
                           "<133>Proxy http started.", "<135>serve1 http-a /a 200 0 -- \"GET\""}) {
    CAPTURE(line);
    CHECK(absl::IsNotFound(parseIngressLog(line).status()));
  }
  for (const char* line : {
           "",
           "\n",
           "serve1 http-a /a 200 0 -- \"GET\"",         // no priority
           "<>serve1 http-a /a 200 0 -- \"GET\"",       // empty priority
           "<-6>serve1 http-a /a 200 0 -- \"GET\"",     // signed priority
           "<13 >serve1 http-a /a 200 0 -- \"GET\"",    // a space in the priority
           "<134serve1 http-a /a 200 0 -- \"GET\"",     // no '>'
           "<1340>serve1 http-a /a 200 0 -- \"GET\"",   // four digits
           "<198>serve1 http-a /a 200 0 -- \"GET\"",    // beyond facility 23
           "<134>serve2 http-a /a 200 0 -- \"GET\"",    // another format version
           "<134>serve1  http-a /a 200 0 -- \"GET\"",   // an empty field
           "<134>serve1 http-a /a 200 0 \"GET\"",       // a field missing
           "<134>serve1 http-a /a 200 0 --",            // no method
           "<134>serve1 http-a /a 200 0 -- GET",        // unquoted method
           "<134>serve1 http-a a 200 0 -- \"GET\"",     // a route that is no path
           "<134>serve1 http-a /a 2x0 0 -- \"GET\"",    // status
           "<134>serve1 http-a /a 1000 0 -- \"GET\"",   // status
           "<134>serve1 http-a /a -2 0 -- \"GET\"",     // status
           "<134>serve1 http-a /a 200 1.5 -- \"GET\"",  // active time
           "<134>serve1 http-a /a 200 -7 -- \"GET\"",   // active time
           "<134>serve1 http-a /a 200 0 --- \"GET\"",   // termination state
           "<134>serve1 http-a /a 200 0 C1 \"GET\"",    // termination state
           "<134>serve1 http-\"a /a 200 0 -- \"GET\"",  // a quote before the method
       }) {
    CAPTURE(line);
    StatusOr<IngressRecord> got = parseIngressLog(line);
    CHECK(absl::IsInvalidArgument(got.status()));
  }
}

TEST_CASE("ingress log parser: gRPC lines") {
  StatusOr<IngressRecord> ok = parseIngressLog(
      "<134>serve1grpc grpc-digits /inference.GRPCInferenceService/ModelInfer 200 - 3 --\n");
  REQUIRE_MESSAGE(ok.ok(), messageOf(ok.status()));
  IngressRecord want{"digits", "/inference.GRPCInferenceService/ModelInfer", "", 200, 3, false};
  want.protocol = IngressProtocol::kGrpc;
  CHECK(*ok == want);

  StatusOr<IngressRecord> refused = parseIngressLog("<134>serve1grpc grpc_not_found - 200 5 0 LR");
  REQUIRE(refused.ok());
  CHECK(refused->application == "-");
  CHECK(refused->route == "-");
  CHECK(refused->grpc_status == 5);
  CHECK(parseIngressLog("<134>serve1grpc grpc-a /a/b 200 16 0 CD")->client_aborted);
  // An HTTP backend's name is not an application on a gRPC line.
  CHECK(parseIngressLog("<134>serve1grpc http-a /a/b 200 - 0 --")->application == "-");

  for (const char* line : {
           "<134>serve1grpc grpc-a /a/b 200 - 3",       // a field missing
           "<134>serve1grpc grpc-a /a/b 200 17 3 --",   // grpc-status beyond 16
           "<134>serve1grpc grpc-a /a/b 200 -1 3 --",   // grpc-status
           "<134>serve1grpc grpc-a /a/b 200 OK 3 --",   // grpc-status
           "<134>serve1grpc grpc-a a/b 200 - 3 --",     // a path that is no path
           "<134>serve1grpc grpc-a /a/b 200 - 3 -- x",  // something after the termination state
       }) {
    CAPTURE(line);
    CHECK(absl::IsInvalidArgument(parseIngressLog(line).status()));
  }
}

TEST_CASE("ingress log parser: the error shows the line, escaped and shortened") {
  const std::string line = "<134>serve1 \x01 " + std::string(300, 'x');
  const std::string message = messageOf(parseIngressLog(line).status());
  CHECK(message.rfind("ingress log line \"<134>serve1 \\x01 xxx", 0) == 0);
  CHECK(message.find("\"...: expected 5 fields before the quoted method") != std::string::npos);
}

}  // namespace
}  // namespace serve::manager
