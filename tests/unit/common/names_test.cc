#include "common/names.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace serve {
namespace {

constexpr char kNameRule[] =
    " (names are 1 to 63 characters from [A-Za-z0-9_.-], starting with a letter or digit)";
constexpr char kPrefixRule[] =
    " (route prefixes start with '/', are at most 200 characters from [A-Za-z0-9/_.~-], and have "
    "no empty, '.' or '..' segments and no trailing '/')";

TEST_CASE("validateName accepts HAProxy-safe names") {
  const std::vector<std::string> valid = {
      "a",    "Z",      "0",  "digits", "my-app", "my_app",
      "v1.2", "9lives", "a-", "a.",     "a_",     std::string(63, 'x'),
  };
  for (const std::string& name : valid) {
    CAPTURE(name);
    CHECK(validateName("application name", name).ok());
  }
}

TEST_CASE("validateName rejects names with the rule they break") {
  struct Case {
    std::string value;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"", "application name \"\": is empty"},
      {std::string(64, 'x'),
       "application name \"" + std::string(64, 'x') + "\": is 64 characters long"},
      {"a b", "application name \"a b\": contains ' '"},
      {"a/b", "application name \"a/b\": contains '/'"},
      {"a#b", "application name \"a#b\": contains '#'"},
      {"a\"b", "application name \"a\\\"b\": contains '\\\"'"},
      {"a\nb", "application name \"a\\nb\": contains '\\n'"},
      {"caf\xc3\xa9", "application name \"caf\\xc3\\xa9\": contains '\\xc3'"},
      {"-a", "application name \"-a\": does not start with a letter or digit"},
      {".a", "application name \".a\": does not start with a letter or digit"},
      {"_a", "application name \"_a\": does not start with a letter or digit"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.value);
    const Status status = validateName("application name", c.value);
    CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(status.message()) == c.message + kNameRule);
  }
}

TEST_CASE("validateName names what it checked") {
  const Status status = validateName("model name", "x y");
  CHECK(std::string(status.message()) ==
        std::string("model name \"x y\": contains ' '") + kNameRule);
}

TEST_CASE("validateName shortens very long values in its message") {
  const std::string value(500, 'y');
  const std::string message(validateName("deployment name", value).message());
  CHECK(message ==
        "deployment name \"" + std::string(80, 'y') + "\"...: is 500 characters long" + kNameRule);
}

TEST_CASE("validateRoutePrefix accepts plain paths") {
  const std::vector<std::string> valid = {
      "/",       "/a",          "/digits",      "/a/b/c", "/A-b_c.d~e", "/v2x",
      "/api/v2", "/my/metrics", "/.well-known", "/a..b",  "/-a",        "/" + std::string(199, 'p'),
  };
  for (const std::string& prefix : valid) {
    CAPTURE(prefix);
    CHECK(validateRoutePrefix(prefix).ok());
  }
}

TEST_CASE("validateRoutePrefix rejects prefixes with the rule they break") {
  struct Case {
    std::string value;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"", "route prefix \"\": does not start with '/'"},
      {"app", "route prefix \"app\": does not start with '/'"},
      {"/" + std::string(200, 'p'),
       "route prefix \"/" + std::string(79, 'p') + "\"...: is 201 characters long"},
      {"/a b", "route prefix \"/a b\": contains ' '"},
      {"/a?b", "route prefix \"/a?b\": contains '?'"},
      {"/a#b", "route prefix \"/a#b\": contains '#'"},
      {"/a%20b", "route prefix \"/a%20b\": contains '%'"},
      {"/a\"b", "route prefix \"/a\\\"b\": contains '\\\"'"},
      {"/a'b", "route prefix \"/a\\'b\": contains '\\''"},
      {"/a;b", "route prefix \"/a;b\": contains ';'"},
      {"/a\nb", "route prefix \"/a\\nb\": contains '\\n'"},
      {"/a\rb", "route prefix \"/a\\rb\": contains '\\r'"},
      {"/{id}", "route prefix \"/{id}\": contains '{'"},
      {"/a/", "route prefix \"/a/\": ends with '/'"},
      {"//", "route prefix \"//\": ends with '/'"},
      {"//a", "route prefix \"//a\": contains an empty segment (\"//\")"},
      {"/a//b", "route prefix \"/a//b\": contains an empty segment (\"//\")"},
      {"/.", "route prefix \"/.\": contains a \".\" segment"},
      {"/a/./b", "route prefix \"/a/./b\": contains a \".\" segment"},
      {"/..", "route prefix \"/..\": contains a \"..\" segment"},
      {"/a/..", "route prefix \"/a/..\": contains a \"..\" segment"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.value);
    const Status status = validateRoutePrefix(c.value);
    CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(status.message()) == c.message + kPrefixRule);
  }
}

TEST_CASE("validateRoutePrefix keeps the system's own paths for the system") {
  const std::vector<std::string> reserved = {"/-",  "/-/healthz", "/-/routes",
                                             "/v2", "/v2/models", "/metrics"};
  for (const std::string& prefix : reserved) {
    CAPTURE(prefix);
    const Status status = validateRoutePrefix(prefix);
    CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(std::string(validateRoutePrefix("/v2/models").message()) ==
        "route prefix \"/v2/models\": \"/v2\" is reserved for the system's own endpoints "
        "(/-/healthz, /-/routes, /v2/..., /metrics)");
}

}  // namespace
}  // namespace serve

namespace serve {
namespace {

TEST_CASE(
    "escapeForLog: control bytes, DEL and backslashes cannot forge a line or drive a terminal") {
  CHECK(escapeForLog("plain text, as is") == "plain text, as is");
  CHECK(escapeForLog("a\nforged line\r\x1b[31mred\x7f\\") ==
        "a\\x0aforged line\\x0d\\x1b[31mred\\x7f\\\\");
  CHECK(escapeForLog(std::string("nul\0byte", 8)) == "nul\\x00byte");
  CHECK(escapeForLog("naïve") == "naïve");  // UTF-8 text stays readable
}

TEST_CASE("escapeForLog as a field: spaces and bytes >= 0x80 are escaped too") {
  CHECK(escapeForLog("/a path 200 0.1ms", true) == "/a\\x20path\\x20200\\x200.1ms");
  CHECK(escapeForLog("/na\xc3\xafve", true) == "/na\\xc3\\xafve");
  CHECK(escapeForLog("/ok/path?x=1", true) == "/ok/path?x=1");
}

}  // namespace
}  // namespace serve
