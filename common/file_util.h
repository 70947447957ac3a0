#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace serve {

// The whole file as bytes. Errors carry errno's status code and read
// "<path>: cannot open <what>: <strerror>" (or "cannot read").
StatusOr<std::string> readWholeFile(const std::string& path, std::string_view what);

}  // namespace serve
