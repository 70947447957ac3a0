#include "replica/frontend/wire_status.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace serve {
namespace {

TEST_CASE("httpStatusFor maps every status code") {
  struct Case {
    absl::StatusCode code;
    int http;
  };
  const std::vector<Case> cases = {
      {absl::StatusCode::kOk, 200},
      {absl::StatusCode::kCancelled, 499},
      {absl::StatusCode::kUnknown, 500},
      {absl::StatusCode::kInvalidArgument, 400},
      {absl::StatusCode::kDeadlineExceeded, 408},
      {absl::StatusCode::kNotFound, 404},
      {absl::StatusCode::kAlreadyExists, 500},
      {absl::StatusCode::kPermissionDenied, 500},
      {absl::StatusCode::kResourceExhausted, 503},
      {absl::StatusCode::kFailedPrecondition, 500},
      {absl::StatusCode::kAborted, 500},
      {absl::StatusCode::kOutOfRange, 500},
      {absl::StatusCode::kUnimplemented, 501},
      {absl::StatusCode::kInternal, 500},
      {absl::StatusCode::kUnavailable, 503},
      {absl::StatusCode::kDataLoss, 500},
      {absl::StatusCode::kUnauthenticated, 500},
  };
  for (const Case& c : cases) {
    const std::string name = absl::StatusCodeToString(c.code);
    CAPTURE(name);
    CHECK(httpStatusFor(Status(c.code, c.code == absl::StatusCode::kOk ? "" : "why")) == c.http);
  }
  CHECK(httpStatusFor(absl::OkStatus()) == 200);
}

TEST_CASE("grpcStatusFor maps every status code and keeps the message") {
  struct Case {
    absl::StatusCode code;
    grpc::StatusCode grpc;
    const char* name;
  };
  const std::vector<Case> cases = {
      {absl::StatusCode::kOk, grpc::StatusCode::OK, "OK"},
      {absl::StatusCode::kCancelled, grpc::StatusCode::CANCELLED, "CANCELLED"},
      {absl::StatusCode::kUnknown, grpc::StatusCode::INTERNAL, "INTERNAL"},
      {absl::StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT"},
      {absl::StatusCode::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED,
       "DEADLINE_EXCEEDED"},
      {absl::StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND, "NOT_FOUND"},
      {absl::StatusCode::kAlreadyExists, grpc::StatusCode::INTERNAL, "INTERNAL"},
      {absl::StatusCode::kPermissionDenied, grpc::StatusCode::INTERNAL, "INTERNAL"},
      {absl::StatusCode::kResourceExhausted, grpc::StatusCode::RESOURCE_EXHAUSTED,
       "RESOURCE_EXHAUSTED"},
      {absl::StatusCode::kFailedPrecondition, grpc::StatusCode::INTERNAL, "INTERNAL"},
      {absl::StatusCode::kAborted, grpc::StatusCode::INTERNAL, "INTERNAL"},
      {absl::StatusCode::kOutOfRange, grpc::StatusCode::INTERNAL, "INTERNAL"},
      {absl::StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED, "UNIMPLEMENTED"},
      {absl::StatusCode::kInternal, grpc::StatusCode::INTERNAL, "INTERNAL"},
      {absl::StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE, "UNAVAILABLE"},
      {absl::StatusCode::kDataLoss, grpc::StatusCode::INTERNAL, "INTERNAL"},
      {absl::StatusCode::kUnauthenticated, grpc::StatusCode::INTERNAL, "INTERNAL"},
  };
  for (const Case& c : cases) {
    const std::string name = absl::StatusCodeToString(c.code);
    CAPTURE(name);
    const bool ok = c.code == absl::StatusCode::kOk;
    grpc::Status st = grpcStatusFor(Status(c.code, ok ? "" : "why"));
    CHECK(st.error_code() == c.grpc);
    CHECK(st.error_message() == (ok ? "" : "why"));
    CHECK(grpcCodeName(st.error_code()) == c.name);
  }
  CHECK(grpcStatusFor(absl::ResourceExhaustedError("Request dropped due to backpressure"))
            .error_message() == "Request dropped due to backpressure");
}

}  // namespace
}  // namespace serve
