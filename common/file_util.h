#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/unique_fd.h"

namespace serve {

// The most readWholeFile reads unless told otherwise: configs, state, templates and tokens are
// kilobytes, so a file this large is a mistake (or an attack) rather than a bigger config.
inline constexpr std::size_t kDefaultReadLimit = std::size_t{64} << 20;  // 64 MiB

// The whole file as bytes, at most `limit` of them. Errors carry errno's status code and read
// "<path>: cannot open <what>: <strerror>" (or "cannot read"; a directory is "cannot read <what>:
// Is a directory"). The size is checked with fstat before anything is allocated:
// "<path>: <what> is N bytes; the limit is M". Other files that are not regular (a FIFO, a
// device, a socket) are refused without reading, and the open never blocks on a FIFO.
StatusOr<std::string> readWholeFile(const std::string& path, std::string_view what,
                                    std::size_t limit = kDefaultReadLimit);

// What stat's st_mode says a file is, for messages: "a directory", "a FIFO", "a regular file".
std::string fileTypeName(unsigned mode);

// `path` opened read-only after checking it is a regular file, and its size then. Opening never
// waits on a FIFO. Errors name the path: "<path>: cannot open <what>: <strerror>",
// "<path>: cannot read <what>: Is a directory", "<path>: <what> is a FIFO, not a regular file".
struct RegularFile {
  UniqueFd fd{-1};
  std::size_t size = 0;
};
StatusOr<RegularFile> openRegularFile(const std::string& path, std::string_view what);

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
