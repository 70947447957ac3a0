#include "haproxy-manager/ingress/ingress_log_parser.h"

#include <algorithm>
#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "haproxy-manager/model/routing_table.h"

namespace serve::manager {

namespace {

constexpr int kSeverityInfo = 6;
constexpr std::size_t kMaxShown = 120;

absl::string_view view(std::string_view s) { return absl::string_view(s.data(), s.size()); }

Status malformed(std::string_view datagram, std::string_view what) {
  const std::string_view shown = datagram.substr(0, kMaxShown);
  return absl::InvalidArgumentError(
      absl::StrCat("ingress log line \"", absl::CHexEscape(view(shown)),
                   datagram.size() > kMaxShown ? "\"..." : "\"", ": ", view(what)));
}

// Splits off the text up to the next space; false when there is no space or the field is empty.
bool nextField(std::string_view& rest, std::string_view& field) {
  const std::size_t space = rest.find(' ');
  if (space == std::string_view::npos || space == 0) {
    return false;
  }
  field = rest.substr(0, space);
  rest.remove_prefix(space + 1);
  return true;
}

bool isTerminationState(std::string_view ts) {
  return ts.size() == 2 && std::all_of(ts.begin(), ts.end(), [](char c) {
           return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '-';
         });
}

// The fields both line kinds share, into `record`: the application from the backend name
// (`prefix` + application, else "-"), the route or path, the HTTP status, %Ta and %ts.
Status parseCommon(std::string_view datagram, std::string_view prefix, std::string_view backend,
                   std::string_view route, std::string_view status, std::string_view active_ms,
                   std::string_view termination, IngressRecord& record) {
  if (absl::StartsWith(view(backend), view(prefix)) && backend.size() > prefix.size()) {
    record.application = std::string(backend.substr(prefix.size()));
  } else {
    record.application = kNoLabel;
  }
  if (route != kNoLabel && route.front() != '/') {
    return malformed(datagram, "the route is neither \"-\" nor a path");
  }
  record.route = std::string(route);
  if (!absl::SimpleAtoi(view(status), &record.status) || record.status < -1 ||
      record.status > 999) {
    return malformed(datagram, "the status is not a number from -1 to 999");
  }
  if (!absl::SimpleAtoi(view(active_ms), &record.latency_ms) || record.latency_ms < -1) {
    return malformed(datagram, "the active time is not a number of milliseconds");
  }
  record.latency_ms = std::max<std::int64_t>(record.latency_ms, 0);  // -1: not measured
  if (!isTerminationState(termination)) {
    return malformed(datagram, "the termination state is not two letters or '-'");
  }
  record.client_aborted = termination.front() == 'C';
  return absl::OkStatus();
}

// "<backend> <path> <status> <grpc-status> <Ta> <termination state>" of a serve1grpc line.
StatusOr<IngressRecord> parseGrpcFields(std::string_view datagram, std::string_view rest) {
  std::array<std::string_view, 5> fields;  // backend, path, status, grpc-status, Ta
  for (std::string_view& field : fields) {
    if (!nextField(rest, field)) {
      return malformed(datagram, "expected 6 fields after \"serve1grpc\"");
    }
  }
  const auto [backend, path, status, grpc_status, active_ms] = fields;
  const std::string_view termination = rest;
  IngressRecord record;
  record.protocol = IngressProtocol::kGrpc;
  if (Status st = parseCommon(datagram, kGrpcBackendNamePrefix, backend, path, status, active_ms,
                              termination, record);
      !st.ok()) {
    return st;
  }
  if (grpc_status != kNoLabel && (!absl::SimpleAtoi(view(grpc_status), &record.grpc_status) ||
                                  record.grpc_status < 0 || record.grpc_status > 16)) {
    return malformed(datagram, "the grpc-status is neither \"-\" nor a code from 0 to 16");
  }
  return record;
}

}  // namespace

StatusOr<IngressRecord> parseIngressLog(std::string_view datagram) {
  std::string_view line = datagram;
  if (!line.empty() && line.back() == '\n') {
    line.remove_suffix(1);
  }

  // "<PRI>": 1 to 3 digits, at most 191 (facility 23, severity 7).
  const std::size_t close = line.find('>');
  const std::string_view digits =
      close == std::string_view::npos ? std::string_view() : line.substr(1, close - 1);
  int priority = -1;
  if (line.empty() || line.front() != '<' || digits.empty() || digits.size() > 3 ||
      !std::all_of(digits.begin(), digits.end(),
                   [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }) ||
      !absl::SimpleAtoi(view(digits), &priority) || priority > 191) {
    return malformed(datagram, "no syslog priority \"<PRI>\" at the start");
  }
  if (priority % 8 != kSeverityInfo) {
    return absl::NotFoundError(absl::StrCat("not a request: severity ", priority % 8));
  }
  std::string_view rest = line.substr(close + 1);
  if (absl::StartsWith(view(rest), absl::StrCat(kGrpcIngressLogMarker, " "))) {
    rest.remove_prefix(sizeof(kGrpcIngressLogMarker));  // the marker and its space
    return parseGrpcFields(datagram, rest);
  }
  if (!absl::StartsWith(view(rest), absl::StrCat(kIngressLogMarker, " "))) {
    return malformed(datagram, absl::StrCat("no \"", kIngressLogMarker, " \" after the priority"));
  }
  rest.remove_prefix(sizeof(kIngressLogMarker));  // the marker and its space

  std::array<std::string_view, 5> fields;  // backend, route, status, Ta, termination state
  for (std::string_view& field : fields) {
    if (!nextField(rest, field) || field.find('"') != std::string_view::npos) {
      return malformed(datagram, "expected 5 fields before the quoted method");
    }
  }
  const auto [backend, route, status, active_ms, termination] = fields;

  IngressRecord record;
  if (Status st = parseCommon(datagram, kBackendNamePrefix, backend, route, status, active_ms,
                              termination, record);
      !st.ok()) {
    return st;
  }

  // The method: everything between the first '"' and the line's last one. Without a closing
  // quote HAProxy cut the line at `len`, inside the method.
  if (rest.empty() || rest.front() != '"') {
    return malformed(datagram, "the method is not quoted");
  }
  rest.remove_prefix(1);
  if (!rest.empty() && rest.back() == '"') {
    record.method = std::string(rest.substr(0, rest.size() - 1));
  }
  return record;
}

}  // namespace serve::manager
