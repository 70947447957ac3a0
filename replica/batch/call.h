#pragma once

// One inference request's journey through the replica, shared by the front-end thread that
// waits for it and the batcher thread that runs it (hence shared_ptr: whichever finishes last
// frees it). The front end may give up on a call (deadline, client gone); the batcher then
// skips it if it has not started, or discards its result if it has.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>

#include "common/status.h"
#include "replica/types/tensor.h"

namespace serve {

struct Call {
  using TimePoint = std::chrono::steady_clock::time_point;

  InferRequest request;
  TimePoint deadline = TimePoint::max();
  TimePoint queued_at{};

  std::atomic<bool> abandoned{false};

  // Sets the result once and wakes the waiter.
  void complete(StatusOr<InferResponse> result) {
    {
      std::lock_guard lock(mu_);
      result_ = std::move(result);
    }
    cv_.notify_all();
  }

  // Waits until the call completes or `until` passes; true when completed.
  bool waitUntil(TimePoint until) {
    std::unique_lock lock(mu_);
    return cv_.wait_until(lock, until, [this] { return result_.has_value(); });
  }

  // Valid once waitUntil() returned true.
  StatusOr<InferResponse>& result() { return *result_; }

 private:
  std::mutex mu_;  // guards result_
  std::condition_variable cv_;
  std::optional<StatusOr<InferResponse>> result_;
};

}  // namespace serve
