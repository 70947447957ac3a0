#pragma once

// Tensors as the KServe v2 / Open Inference Protocol describes them: a name, a datatype, a
// shape and the elements. Elements are kept as raw little-endian bytes in row-major order,
// which is also the layout of the gRPC `raw_input_contents`, so both front ends share one form.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
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

struct InferRequest {
  std::string id;     // the request id (x-request-id or the body's "id")
  std::string model;  // the model name the request was addressed to
  std::vector<Tensor> inputs;
  std::vector<std::string> requested_outputs;  // empty = all
};

struct InferResponse {
  std::string id;
  std::string model;
  std::vector<Tensor> outputs;
};

}  // namespace serve
