#pragma once

// The one place per protocol where a Status becomes a wire code: an HTTP status, or a gRPC
// status. InferenceService's codes (see inference_service.h) map to both consistently:
//   InvalidArgument    400  INVALID_ARGUMENT      NotFound           404  NOT_FOUND
//   ResourceExhausted  503  RESOURCE_EXHAUSTED    DeadlineExceeded   408  DEADLINE_EXCEEDED
//   Unavailable        503  UNAVAILABLE (drain)   Cancelled          499  CANCELLED
#include <grpcpp/support/status.h>

#include <string>

#include "common/status.h"

namespace serve {

// 499 (client went away) never reaches a client; it is what metrics and logs record.
int httpStatusFor(const Status& status);

// The gRPC status carrying `status`'s code and message. Codes the replica never produces map
// to INTERNAL, so an unexpected error is not mistaken for a retryable one.
grpc::Status grpcStatusFor(const Status& status);

// The canonical upper-case name of a gRPC code ("OK", "RESOURCE_EXHAUSTED", ...), as metrics
// label it.
std::string grpcCodeName(grpc::StatusCode code);

}  // namespace serve
