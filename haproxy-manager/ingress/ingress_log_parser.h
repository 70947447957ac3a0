#pragma once

// One HAProxy request log datagram -> one request record. Pure.
//
// HTTP requests (the `http` frontend):
//
// The `http` frontend of templates/haproxy.cfg.mustache sends, per request, to the ingress log
// socket (`log <socket> len 4096 format priority local0 info`):
//
//   <134>serve1 http-digits /digits 200 12 -- "POST"\n
//   <PRI>serve1 <backend> <route> <status> <Ta> <termination state> "<method>"
//
// <PRI> is the syslog priority: facility * 8 + severity; requests are logged at severity info
// (6). HAProxy also sends its own notices and warnings to every logger of the frontend ("Proxy
// http stopped (...)" at each reload, severity 4); those are not requests (NotFound).
//
// The first five fields come from HAProxy and the config alone: backend names and routes are
// validated identifiers and prefixes (common/names), the rest are numbers and the two-letter
// termination state, so none holds a space or a quote. The method is the only field a client
// chooses; it comes last, quoted, and HAProxy writes a '"' or control byte in it as "#XX", so
// the quoted method runs to the line's last '"' whatever it contains. A line that HAProxy cut
// at `len` loses only the end of the method (then `method` is empty).
//
// gRPC calls (the `grpc` frontend), every field from HAProxy or the config, none quoted:
//
//   <134>serve1grpc grpc-digits /inference.GRPCInferenceService/ModelInfer 200 - 3 --\n
//   <PRI>serve1grpc <backend> <path> <status> <grpc-status> <Ta> <termination state>
//
// <path> is the call's :path when it has the form /<service>/<method> (letters, digits, '_' and
// '.'), else "-"; <grpc-status> is the grpc-status response *header*, present on trailers-only
// answers (every error a replica or HAProxy gives to a unary call), "-" otherwise: HAProxy does
// not log trailers, so a completed call without it succeeded.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace serve::manager {

// The marker after the syslog header: names the format and its version.
inline constexpr char kIngressLogMarker[] = "serve1";
inline constexpr char kGrpcIngressLogMarker[] = "serve1grpc";

enum class IngressProtocol { kHttp, kGrpc };

// What `application` and `route` are when HAProxy answered by itself (404 for an unknown path,
// /-/healthz, /-/routes) or no route matched.
inline constexpr char kNoLabel[] = "-";

struct IngressRecord {
  // The application whose backend `http-<application>` took the request; "-" otherwise.
  std::string application;
  // "/v2/models/<model>", the matched route prefix, "/-/healthz", "/-/routes", or "-".
  std::string route;
  // As HAProxy logged it: "GET", "<BADREQ>" for a request it could not parse, a client's own
  // token with '"', '#' and control bytes as "#XX"; empty when the line was cut inside it.
  std::string method;
  // HAProxy's %ST: the status sent to the client; 0 or -1 when none was sent.
  int status = 0;
  // HAProxy's %Ta: from the first byte of the request to the last byte of the response, in
  // whole milliseconds (excludes the idle time before a keep-alive request, unlike %Tt).
  std::int64_t latency_ms = 0;
  // The termination state starts with 'C': the client closed the connection first.
  bool client_aborted = false;
  // gRPC calls: `route` is the call's path ("/<service>/<method>", or "-"), `method` is empty,
  // and `grpc_status` the grpc-status header (0-16), -1 when the answer had none.
  IngressProtocol protocol = IngressProtocol::kHttp;
  int grpc_status = -1;

  friend bool operator==(const IngressRecord&, const IngressRecord&) = default;
};

// One datagram, syslog header included (a trailing "\n" is allowed). NotFound: a line of
// HAProxy's own (severity other than info), to be ignored. InvalidArgument: anything else that
// is not the format above; the message says what is wrong.
StatusOr<IngressRecord> parseIngressLog(std::string_view datagram);

}  // namespace serve::manager
