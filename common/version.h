#pragma once

// The release this build reports in KServe v2 server metadata (replica and node): CMake's
// project() version, passed in as SERVE_VERSION by serve_common.
#include <string_view>

namespace serve {

inline constexpr std::string_view kServeVersion = SERVE_VERSION;

}  // namespace serve
