#pragma once

// The project's one error type. Fallible work returns absl::Status / absl::StatusOr<T>;
// exceptions thrown by libraries (yaml-cpp, nlohmann::json) are caught in the adapter that
// calls them and turned into a Status, so they never cross a module boundary.
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace serve {

using Status = absl::Status;
template <typename T>
using StatusOr = absl::StatusOr<T>;

// Debian's abseil has its own string_view type, which fmt and std APIs do not take; this is
// the one conversion point.
inline std::string messageOf(const Status& status) { return std::string(status.message()); }

}  // namespace serve
