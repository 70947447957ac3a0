#pragma once

// Checks for identifiers that end up in haproxy.cfg, map files and URLs: application,
// deployment and model names, and route prefixes. The rules are deliberately narrower than
// HAProxy's own grammar so that a checked value can be spliced into a config line, a map
// file or a runtime-API command without quoting or escaping.
#include <cstddef>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "common/status.h"

namespace serve {

// `value` in double quotes for an error message: C-escaped, so that a newline or quote in user
// input cannot forge a log line, and cut to 80 bytes (then `"..."...`), so that a megabyte of
// garbage does not become a megabyte of error. Named apart from std::quoted on purpose: an
// unqualified `quoted(...)` next to <iomanip>/<chrono> is ambiguous under argument-dependent
// lookup on newer standard libraries (GCC 13).
std::string quoteForMessage(absl::string_view value);

// `value` made safe for one log line: every byte a client or user code could use to forge a line
// or drive a terminal (control bytes and DEL) becomes `\xNN`, a backslash `\\`. As a field of
// a space-separated line (`field`), spaces and bytes >= 0x80 are escaped too, so a path cannot
// forge the fields after it; text (`field` false) keeps them readable. Never cut.
std::string escapeForLog(std::string_view value, bool field = false);

inline constexpr std::size_t kMaxNameLength = 63;
inline constexpr std::size_t kMaxRoutePrefixLength = 200;

// A name is 1 to 63 characters from [A-Za-z0-9_.-] and starts with a letter or digit.
// `what` says what the name is for ("application name"); it leads the error message, e.g.
// `application name "a b": contains ' ' (names are 1 to 63 characters ...)`.
Status validateName(std::string_view what, std::string_view value);

// A route prefix starts with '/', is at most 200 characters from [A-Za-z0-9/_.~-], has no
// empty ("//"), "." or ".." segments, and no trailing '/' unless it is exactly "/". Its first
// segment may not be one the system answers itself: "-" (/-/healthz, /-/routes), "v2" (the
// KServe v2 API) or "metrics".
Status validateRoutePrefix(std::string_view value);

}  // namespace serve
