#pragma once

// Tensors as the KServe v2 / Open Inference Protocol describes them: a name, a datatype, a
// shape and the elements. Elements are kept as raw little-endian bytes in row-major order,
// which is also the layout of the gRPC `raw_input_contents`, so both front ends share one form.
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace serve {

enum class DataType {
  kBool,
  kUint8,
  kUint16,
  kUint32,
  kUint64,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFp32,
  kFp64
};

std::string_view dataTypeName(DataType t);  // "FP32", ...
std::optional<DataType> parseDataType(std::string_view name);
size_t dataTypeSize(DataType t);  // bytes per element

struct Tensor {
  std::string name;
  DataType datatype = DataType::kFp32;
  std::vector<int64_t> shape;
  std::vector<std::byte> data;  // elementCount() * dataTypeSize(datatype) bytes

  int64_t elementCount() const;

  template <typename T>
  std::span<const T> as() const {
    return {reinterpret_cast<const T*>(data.data()), data.size() / sizeof(T)};
  }
  template <typename T>
  std::span<T> as() {
    return {reinterpret_cast<T*>(data.data()), data.size() / sizeof(T)};
  }
};

// Number of elements a shape describes; an error for negative dimensions or overflow.
StatusOr<int64_t> shapeElementCount(const std::vector<int64_t>& shape);

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// An HTTP request at the application's route, handed to a model that answers HTTP itself (a
// Python deployment's __call__) rather than KServe tensors.
struct HttpPayload {
  std::string method;
  std::string path;   // the full path, route prefix included
  std::string query;  // after '?', undecoded
  HeaderList headers;
  std::string body;
};

// The parts of a streaming response, produced on the model's side and consumed on the front
// end's. push() and finish() never block; next() waits for a part or the end. The two sides
// talk back through hooks that the producer sets before it hands the stream out:
//   - on_taken runs after next() took a part (the producer's flow control: it keeps at most a
//     window of parts unconsumed, so a slow client slows the model instead of growing memory);
//   - on_cancel runs once when the consumer calls cancel() (its client left) before the end;
//   - onFinished() callbacks run once at finish() (the admission slot held by the stream).
template <typename Part>
class PartStream {
 public:
  struct Hooks {
    std::function<void()> on_taken;
    std::function<void()> on_cancel;
  };

  void setHooks(Hooks hooks) {
    std::lock_guard lock(mu_);
    hooks_ = std::move(hooks);
  }
  // Runs `callback` at finish(), or at once if the stream has finished already.
  void onFinished(std::function<void()> callback) {
    {
      std::lock_guard lock(mu_);
      if (!finished_) {
        on_finished_.push_back(std::move(callback));
        return;
      }
    }
    callback();
  }
  void push(Part part) {
    {
      std::lock_guard lock(mu_);
      parts_.push_back(std::move(part));
    }
    cv_.notify_all();
  }
  // Ends the stream; a non-empty `error` says it broke off. Later calls do nothing.
  void finish(std::string error = {}) {
    std::vector<std::function<void()>> callbacks;
    {
      std::lock_guard lock(mu_);
      if (finished_) {
        return;
      }
      finished_ = true;
      error_ = std::move(error);
      callbacks.swap(on_finished_);
    }
    cv_.notify_all();
    for (auto& callback : callbacks) {
      callback();
    }
  }
  // The next part; nullopt at the end (error() then says whether it broke off).
  std::optional<Part> next() {
    std::function<void()> taken;
    std::optional<Part> part;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !parts_.empty() || finished_; });
      if (parts_.empty()) {
        return std::nullopt;
      }
      part = std::move(parts_.front());
      parts_.pop_front();
      taken = hooks_.on_taken;
    }
    if (taken) {
      taken();
    }
    return part;
  }
  std::string error() const {
    std::lock_guard lock(mu_);
    return error_;
  }
  // The consumer wants no more parts (its client went away). Idempotent; no-op after the end.
  void cancel() {
    std::function<void()> on_cancel;
    {
      std::lock_guard lock(mu_);
      if (finished_ || cancelled_) {
        return;
      }
      cancelled_ = true;
      on_cancel = hooks_.on_cancel;
    }
    if (on_cancel) {
      on_cancel();
    }
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Part> parts_;
  bool finished_ = false;
  bool cancelled_ = false;
  std::string error_;
  Hooks hooks_;
  std::vector<std::function<void()>> on_finished_;
};

// An HTTP response body's chunks.
using ChunkStream = PartStream<std::string>;

struct HttpReply {
  int status = 200;
  HeaderList headers;
  std::string body;
  std::shared_ptr<ChunkStream> stream;  // set for a streaming response; body is then empty
};

// A KServe inference response streamed as a series of output sets (gRPC ModelStreamInfer).
using TensorStream = PartStream<std::vector<Tensor>>;

struct InferRequest {
  std::string id;     // the request id (x-request-id or the body's "id")
  std::string model;  // the model name the request was addressed to
  std::vector<Tensor> inputs;
  std::vector<std::string> requested_outputs;  // empty = all
  std::shared_ptr<const HttpPayload> http;     // set: an HTTP request, not KServe tensors
};

struct InferResponse {
  std::string id;
  std::string model;
  std::vector<Tensor> outputs;
  std::shared_ptr<HttpReply> http;  // the answer to an HTTP request
  // Set when the model streams its outputs (a Python generator `infer`); `outputs` is then
  // empty and each part of the stream is one response's outputs.
  std::shared_ptr<TensorStream> stream;
};

// Whether `response` streams (HTTP chunks or tensor sets); the stream holds the request's
// admission slot until it ends.
inline bool isStreaming(const InferResponse& response) {
  return response.stream != nullptr || (response.http != nullptr && response.http->stream);
}
// Runs `callback` when the response's stream ends; at once for a response that does not stream.
void onStreamEnd(const InferResponse& response, std::function<void()> callback);

}  // namespace serve
