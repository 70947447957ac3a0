#include "replica/types/tensor.h"

#include <array>
#include <limits>

namespace serve {
namespace {

struct TypeInfo {
  DataType type;
  std::string_view name;
  size_t size;
};

constexpr std::array<TypeInfo, 11> kTypes = {{
    {DataType::kBool, "BOOL", 1},
    {DataType::kUint8, "UINT8", 1},
    {DataType::kUint16, "UINT16", 2},
    {DataType::kUint32, "UINT32", 4},
    {DataType::kUint64, "UINT64", 8},
    {DataType::kInt8, "INT8", 1},
    {DataType::kInt16, "INT16", 2},
    {DataType::kInt32, "INT32", 4},
    {DataType::kInt64, "INT64", 8},
    {DataType::kFp32, "FP32", 4},
    {DataType::kFp64, "FP64", 8},
}};

const TypeInfo& info(DataType t) { return kTypes[static_cast<size_t>(t)]; }

}  // namespace

std::string_view dataTypeName(DataType t) { return info(t).name; }

size_t dataTypeSize(DataType t) { return info(t).size; }

std::optional<DataType> parseDataType(std::string_view name) {
  for (const TypeInfo& ti : kTypes) {
    if (ti.name == name) {
      return ti.type;
    }
  }
  return std::nullopt;
}

int64_t Tensor::elementCount() const {
  return static_cast<int64_t>(data.size() / dataTypeSize(datatype));
}

StatusOr<int64_t> shapeElementCount(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0) {
      return absl::InvalidArgumentError("shape has a negative dimension");
    }
    if (dim != 0 && count > std::numeric_limits<int32_t>::max() / dim) {
      return absl::InvalidArgumentError("shape describes more than 2^31 elements");
    }
    count *= dim;
  }
  return count;
}

void onStreamEnd(const InferResponse& response, std::function<void()> callback) {
  if (response.stream != nullptr) {
    response.stream->onFinished(std::move(callback));
  } else if (response.http != nullptr && response.http->stream != nullptr) {
    response.http->stream->onFinished(std::move(callback));
  } else {
    callback();
  }
}

}  // namespace serve
