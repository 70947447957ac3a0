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

}  // namespace
}  // namespace serve
