#include "replica/core/inference_service.h"

#include "replica/metrics/replica_metrics.h"

namespace serve {

using std::chrono::steady_clock;

namespace {
double toMs(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }
}  // namespace

InferenceService::InferenceService(std::unique_ptr<Model> model, InferenceOptions options,
                                   ReplicaMetrics& metrics)
    : model_(std::move(model)),
      options_(options),
      metrics_(metrics),
      batching_(options.batching.max_batch_size > 1),
      admission_(options.max_ongoing_requests, options.max_queued_requests),
      batcher_(
          *model_, options.batching, [this] { admission_.release(); },
          BatchObserver{
              .on_batch =
                  [this](size_t size, std::chrono::nanoseconds wait, std::chrono::nanoseconds run) {
                    metrics_.forward_passes.inc();
                    metrics_.model_requests.inc(static_cast<double>(size));
                    metrics_.batch_size.observe(static_cast<double>(size));
                    metrics_.batch_wait_ms.observe(toMs(wait));
                    metrics_.forward_ms.observe(toMs(run));
                  },
              .on_skipped = [this](const Call&) { metrics_.skipped_requests.inc(); },
          }) {}

StatusOr<InferResponse> InferenceService::infer(InferRequest request, TimePoint deadline,
                                                const std::function<bool()>& client_gone) {
  // While this request is being validated it counts as `incoming` for the batch policy: a
  // batch that could include it waits (at most batch_wait_timeout) rather than leave without
  // it. A request blocked in admission does not count: it cannot join before a batch ends.
  if (batching_) {
    batcher_.addIncoming(1);
  }
  Status valid = model_->validate(request);
  if (batching_) {
    batcher_.addIncoming(-1);
  }
  if (!valid.ok()) {
    return valid;
  }
  if (steady_clock::now() >= deadline) {
    return absl::DeadlineExceededError("the request's deadline passed before it was admitted");
  }
  switch (admission_.acquire(deadline, client_gone)) {
    case Admission::Outcome::kAdmitted:
      break;
    case Admission::Outcome::kRejected:
      return absl::ResourceExhaustedError("Request dropped due to backpressure");
    case Admission::Outcome::kTimedOut:
      return absl::DeadlineExceededError("the deadline passed while the request was queued");
    case Admission::Outcome::kCancelled:
      return absl::CancelledError("the client disconnected while the request was queued");
  }

  auto call = std::make_shared<Call>();
  call->request = std::move(request);
  call->deadline = deadline;
  batcher_.submit(call);

  // Wait in slices so a client that leaves is noticed; a result wakes the wait at once.
  constexpr auto kPoll = std::chrono::milliseconds(20);
  while (true) {
    auto now = steady_clock::now();
    if (now >= deadline) {
      break;
    }
    auto until = client_gone ? std::min(deadline, now + kPoll) : deadline;
    if (call->waitUntil(until)) {
      return std::move(call->result());
    }
    if (client_gone && client_gone()) {
      call->abandoned.store(true);
      batcher_.wake();
      return absl::CancelledError("the client disconnected");
    }
  }
  // At the deadline the caller is answered now; a running forward pass finishes and its
  // result for this call is discarded, a queued call never reaches the model.
  call->abandoned.store(true);
  batcher_.wake();
  return absl::DeadlineExceededError("the request's deadline passed");
}

void InferenceService::stop() { batcher_.stop(); }

InferenceService::~InferenceService() {
  batcher_.stop();
  model_.reset();
}

}  // namespace serve
