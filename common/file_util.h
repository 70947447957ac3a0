#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace serve {

// The whole file as bytes. Errors carry errno's status code and read
// "<path>: cannot open <what>: <strerror>" (or "cannot read").
StatusOr<std::string> readWholeFile(const std::string& path, std::string_view what);

// Writes `text` to `path` through a temporary file in the same folder and a rename, so a reader
// sees the old file or the new one, never a part; the file gets `mode` (e.g. 0600). Errors name
// the path and the step: "<path>: cannot write <what>: <strerror>".
Status writePrivateFileAtomically(const std::string& path, const std::string& text,
                                  std::string_view what, unsigned mode = 0600);

}  // namespace serve
