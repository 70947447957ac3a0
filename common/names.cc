#include "common/names.h"

#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace serve {
namespace {

constexpr absl::string_view kNameRule =
    "names are 1 to 63 characters from [A-Za-z0-9_.-], starting with a letter or digit";
constexpr absl::string_view kRoutePrefixRule =
    "route prefixes start with '/', are at most 200 characters from [A-Za-z0-9/_.~-], and have "
    "no empty, '.' or '..' segments and no trailing '/'";

std::string quotedChar(char c) {
  return absl::StrCat("'", absl::CHexEscape(absl::string_view(&c, 1)), "'");
}

bool isAsciiAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool isNameChar(char c) { return isAsciiAlnum(c) || c == '_' || c == '.' || c == '-'; }

bool isRouteChar(char c) {
  return isAsciiAlnum(c) || c == '/' || c == '_' || c == '.' || c == '~' || c == '-';
}

Status nameError(absl::string_view what, absl::string_view value, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " ", quoteForMessage(value), ": ", problem, " (", kNameRule, ")"));
}

Status prefixError(absl::string_view value, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("route prefix ", quoteForMessage(value), ": ",
                                                 problem, " (", kRoutePrefixRule, ")"));
}

}  // namespace

std::string quoteForMessage(absl::string_view value) {
  constexpr std::size_t kMaxShown = 80;
  if (value.size() > kMaxShown) {
    return absl::StrCat("\"", absl::CHexEscape(value.substr(0, kMaxShown)), "\"...");
  }
  return absl::StrCat("\"", absl::CHexEscape(value), "\"");
}

Status validateName(std::string_view what_std, std::string_view value_std) {
  // Debian builds abseil with its own string_view type; convert once at the boundary.
  const absl::string_view what(what_std.data(), what_std.size());
  const absl::string_view value(value_std.data(), value_std.size());
  if (value.empty()) {
    return nameError(what, value, "is empty");
  }
  if (value.size() > kMaxNameLength) {
    return nameError(what, value, absl::StrCat("is ", value.size(), " characters long"));
  }
  for (char c : value) {
    if (!isNameChar(c)) {
      return nameError(what, value, absl::StrCat("contains ", quotedChar(c)));
    }
  }
  if (!isAsciiAlnum(value.front())) {
    return nameError(what, value, "does not start with a letter or digit");
  }
  return absl::OkStatus();
}

Status validateRoutePrefix(std::string_view value_std) {
  const absl::string_view value(value_std.data(), value_std.size());
  if (value.empty() || value.front() != '/') {
    return prefixError(value, "does not start with '/'");
  }
  if (value.size() > kMaxRoutePrefixLength) {
    return prefixError(value, absl::StrCat("is ", value.size(), " characters long"));
  }
  for (char c : value) {
    if (!isRouteChar(c)) {
      return prefixError(value, absl::StrCat("contains ", quotedChar(c)));
    }
  }
  if (value == "/") {
    return absl::OkStatus();
  }
  if (value.back() == '/') {
    return prefixError(value, "ends with '/'");
  }
  // Split on '/' after the leading one; every segment must be a real path component.
  absl::string_view rest = value.substr(1);
  bool first = true;
  while (true) {
    std::size_t slash = rest.find('/');
    absl::string_view segment = rest.substr(0, slash);
    if (segment.empty()) {
      return prefixError(value, "contains an empty segment (\"//\")");
    }
    if (segment == "." || segment == "..") {
      return prefixError(value, absl::StrCat("contains a \"", segment, "\" segment"));
    }
    if (first && (segment == "-" || segment == "v2" || segment == "metrics")) {
      return absl::InvalidArgumentError(
          absl::StrCat("route prefix ", quoteForMessage(value), ": \"/", segment,
                       "\" is reserved for the system's own endpoints (/-/healthz, /-/routes, "
                       "/v2/..., /metrics)"));
    }
    first = false;
    if (slash == absl::string_view::npos) {
      break;
    }
    rest = rest.substr(slash + 1);
  }
  return absl::OkStatus();
}

std::string escapeForLog(std::string_view value, bool field) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte == '\\') {
      out += "\\\\";
    } else if (byte < 0x20 || byte == 0x7f || (field && (byte == ' ' || byte >= 0x80))) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace serve
