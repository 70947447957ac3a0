#pragma once

// Tensors as the KServe v2 / Open Inference Protocol describes them: a name, a datatype, a
// shape and the elements. Elements are kept as raw little-endian bytes in row-major order,
// which is also the layout of the gRPC `raw_input_contents`, so both front ends share one form.
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
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

// The chunks of a streaming response, produced by the model's thread and consumed by the front
// end's: push() and finish() never block; next() waits for a chunk or the end.
class ChunkStream {
 public:
  void push(std::string chunk);
  void finish(std::string error = {});  // a non-empty error: the stream broke off
  // The next chunk; nullopt at the end (error() then says whether it broke off).
  std::optional<std::string> next();
  std::string error() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> chunks_;
  bool finished_ = false;
  std::string error_;
};

struct HttpReply {
  int status = 200;
  HeaderList headers;
  std::string body;
  std::shared_ptr<ChunkStream> stream;  // set for a streaming response; body is then empty
};

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
};

}  // namespace serve
