#pragma once

// The narrow interface every front end (HTTP and gRPC) calls: one request in, one
// response or error out. It owns the model, admission control and the batcher, so both
// protocols share one pool of max_ongoing_requests slots. Error codes, mapped to wire codes by
// each front end (frontend/wire_status):
//   InvalidArgument    bad input (400)          ResourceExhausted  backpressure (503)
//   DeadlineExceeded   deadline passed (408)    Cancelled          client went away (499)
//   NotFound           unknown model (404)      Internal           model failure (500)
#include <chrono>
#include <functional>
#include <memory>

#include "common/status.h"
#include "replica/batch/batcher.h"
#include "replica/core/admission.h"
#include "replica/runtime/model.h"

namespace serve {

class ReplicaMetrics;

struct InferenceOptions {
  int max_ongoing_requests = 5;
  int max_queued_requests = -1;
  BatchConfig batching;
};

class InferenceService {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  InferenceService(std::unique_ptr<Model> model, InferenceOptions options, ReplicaMetrics& metrics);
  // Stops the batcher, then destroys the model while the admission it may still release slots
  // of (streams it ends as it goes) exists.
  ~InferenceService();

  const Model& model() const { return *model_; }

  // Runs one request on the caller's thread until it has a result, its deadline passes or
  // client_gone() (polled while waiting; may be empty) says the caller left.
  StatusOr<InferResponse> infer(InferRequest request, TimePoint deadline,
                                const std::function<bool()>& client_gone);

  // Finishes every admitted request; later infer() calls must not be made.
  void stop();

  int ongoing() const { return admission_.ongoing(); }
  int queued() const { return admission_.queued(); }
  std::chrono::nanoseconds stalledFor(TimePoint now) const { return batcher_.stalledFor(now); }

 private:
  std::unique_ptr<Model> model_;
  const InferenceOptions options_;
  ReplicaMetrics& metrics_;
  const bool batching_;  // max_batch_size > 1: only then does the policy need `incoming`
  Admission admission_;
  Batcher batcher_;  // last: its thread starts in its constructor and uses the members above
};

}  // namespace serve
