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

// Makes sure `dir` is a directory only the running user controls: created with mode 0700 when
// missing (parents as needed); when it exists, it must be a directory owned by this user that
// neither group nor others may write to. It is never chmod-ed: a shared directory such as /tmp
// is refused, not changed. `hint` ends the error message with what the operator can do, e.g.
// "point RAY_SERVE_HAPROXY_CONFIG_FILE_LOC elsewhere".
Status ensurePrivateDirectory(const std::string& dir, std::string_view hint);

}  // namespace serve
