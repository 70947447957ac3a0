#pragma once

// One request/response exchange over a unix stream socket, as HAProxy's admin socket and master
// CLI speak it: connect, write the request, read until the peer closes. Blocking, bounded by one
// deadline for the whole exchange, no state kept between calls.
#include <chrono>
#include <string>
#include <string_view>

#include "common/status.h"

namespace serve::manager {

// Sends `request` (written as given: the caller adds the trailing newline) to the socket at
// `path` and returns everything the peer wrote until it closed the connection. Errors name the
// path and the failing step: "<path>: connect: No such file or directory" (code from errno),
// "<path>: no end of reply within 5s (got 12 bytes)" (DeadlineExceeded).
StatusOr<std::string> unixSocketRequest(const std::string& path, std::string_view request,
                                        std::chrono::milliseconds timeout);

}  // namespace serve::manager
