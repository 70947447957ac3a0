#include "common/cli.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace serve::cli {
namespace {

using Args = std::vector<std::string>;

// What the validator makes of `value`: the error, or "ok:" and the value it leaves.
std::string apply(CLI::Validator validator, std::string value) {
  const std::string error = validator(value);
  return error.empty() ? "ok:" + value : error;
}

TEST_CASE("integerIn: plain decimal in the range, rewritten without leading zeros") {
  struct Case {
    std::string value;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"0", "ok:0"},
      {"65535", "ok:65535"},
      {"-0", "ok:0"},
      {"010", "ok:10"},  // CLI11 alone would read octal 8
      {"65536", "expected an integer in [0, 65535], got '65536'"},
      {"-1", "expected an integer in [0, 65535], got '-1'"},
      {"", "expected an integer in [0, 65535], got ''"},
      {" 80", "expected an integer in [0, 65535], got ' 80'"},
      {"80 ", "expected an integer in [0, 65535], got '80 '"},
      {"+80", "expected an integer in [0, 65535], got '+80'"},
      {"8.0", "expected an integer in [0, 65535], got '8.0'"},
      {"8e3", "expected an integer in [0, 65535], got '8e3'"},
      {"0x1f", "expected an integer in [0, 65535], got '0x1f'"},
      {"99999999999999999999", "expected an integer in [0, 65535], got '99999999999999999999'"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.value);
    CHECK(apply(integerIn(0, 65535), c.value) == c.expected);
  }
  CHECK(apply(integerIn(1, std::numeric_limits<int64_t>::max()), "0") ==
        "expected an integer >= 1, got '0'");
  CHECK(apply(integerIn(1, std::numeric_limits<int64_t>::max()), "9223372036854775807") ==
        "ok:9223372036854775807");
}

TEST_CASE("numberIn, secondsIn and nonEmpty") {
  CHECK(apply(numberIn(0.1, 3600), "0.1") == "ok:0.1");
  CHECK(apply(numberIn(0.1, 3600), "3600") == "ok:3600");
  CHECK(apply(numberIn(0.1, 3600), "1e3") == "ok:1e3");
  CHECK(apply(numberIn(0.1, 3600), "0.05") == "expected a number in [0.1, 3600], got '0.05'");
  for (const char* bad : {"", "nan", "inf", "-inf", "1s", " 1", "0x10", "1,5"}) {
    CAPTURE(bad);
    CHECK(apply(numberIn(0, 86400), bad) ==
          std::string("expected a number in [0, 86400], got '") + bad + "'");
  }
  CHECK(apply(numberIn(0, 3600, /*lo_open=*/true), "0") ==
        "expected a number in (0, 3600], got '0'");
  CHECK(apply(numberIn(0, 3600, true), "0.001") == "ok:0.001");
  CHECK(apply(numberIn(0), "1e9") == "ok:1e9");
  CHECK(apply(numberIn(0), "-1") == "expected a number >= 0, got '-1'");
  CHECK(apply(numberIn(0), "inf") == "expected a number >= 0, got 'inf'");

  CHECK(apply(secondsIn(0.001, 86400), "2") == "ok:2");
  CHECK(apply(secondsIn(0.001, 86400), "2.5s") == "ok:2.5");
  CHECK(apply(secondsIn(0.001, 86400), "0s") == "expected seconds in [0.001, 86400], got '0s'");
  CHECK(apply(secondsIn(0.001, 86400), "s") == "expected seconds in [0.001, 86400], got 's'");
  CHECK(apply(secondsIn(0.001, 86400), "2ms") == "expected seconds in [0.001, 86400], got '2ms'");

  CHECK(apply(nonEmpty(), "x") == "ok:x");
  CHECK(apply(nonEmpty(), "") == "expected a non-empty value");
}

// A small command line read in order: --port N, --name TEXT (required), --fast.
struct Tool {
  CLI::App app{"tool", "tool"};
  int port = 0;
  std::string name;
  bool fast = false;

  Tool() {
    app.add_option("--port", port)->type_name("N")->transform(integerIn(1, 65535));
    app.add_option("--name", name)->required()->check(nonEmpty());
    app.add_flag("--fast", fast);
    readInOrder(app);
  }
};

TEST_CASE("parse with readInOrder: values, help and errors in the order they come") {
  struct Case {
    Args args;
    std::string outcome;  // "help", "ok port=N name=X fast=B", or the error
  };
  const std::vector<Case> cases = {
      {{"--name", "a"}, "ok port=0 name=a fast=0"},
      {{"--name=a", "--port=8", "--fast"}, "ok port=8 name=a fast=1"},
      {{"--port", "1", "--name", "a", "--port", "2"}, "ok port=2 name=a fast=0"},
      {{"--name", "a=b"}, "ok port=0 name=a=b fast=0"},
      {{"--name", "--port"}, "ok port=0 name=--port fast=0"},  // a value, as argv loops take it
      // Help where it stands: what comes after it is not read, what comes before it is.
      {{"--help"}, "help"},
      {{"-h", "--bogus", "--port=0"}, "help"},
      {{"--port", "--help"}, "--port: expected an integer in [1, 65535], got '--help'"},
      {{"--port=0", "--help"}, "--port: expected an integer in [1, 65535], got '0'"},
      {{"--bogus", "--help"}, "unknown flag '--bogus'"},
      // "--flag=" is the empty value; it does not take the next argument.
      {{"--name=", "--port", "8"}, "--name: expected a non-empty value"},
      {{"--name", ""}, "--name: expected a non-empty value"},
      // The first error wins.
      {{"--port=0", "--bogus"}, "--port: expected an integer in [1, 65535], got '0'"},
      {{"--bogus=1", "--port=0"}, "unknown flag '--bogus'"},
      {{"--bogus"}, "unknown flag '--bogus'"},
      {{"-x", "--name", "a"}, "unknown flag '-x'"},
      {{"--NAME", "a"}, "unknown flag '--NAME'"},
      {{"stray", "--name", "a"}, "unexpected argument 'stray'"},
      {{"--name", "a", "--port"}, "--port: missing value"},
      {{}, "--name is required"},
      {{"--port", "8"}, "--name is required"},
  };
  for (const Case& c : cases) {
    std::string joined;
    for (const std::string& a : c.args) {
      joined += "[" + a + "]";
    }
    CAPTURE(joined);
    Tool tool;
    const ParseResult result = parse(tool.app, c.args);
    std::string outcome = result.error;
    if (result.help) {
      outcome = "help";
    } else if (result.ok()) {
      outcome = "ok port=" + std::to_string(tool.port) + " name=" + tool.name +
                " fast=" + std::to_string(tool.fast);
    }
    CHECK(outcome == c.outcome);
  }
}

TEST_CASE("parse with subcommands: CLI11's own help, the subcommand's flags and errors") {
  CLI::App app("tool", "tool");
  app.require_subcommand(1);
  std::string file;
  double timeout = -1;
  CLI::App* deploy = app.add_subcommand("deploy", "deploy FILE");
  deploy->add_option("FILE", file)->required();
  CLI::App* drain = app.add_subcommand("drain", "drain");
  drain->add_option("--timeout", timeout)->check(numberIn(0));

  ParseResult r = parse(app, {"deploy", "x.yaml"});
  CHECK(r.ok());
  CHECK(file == "x.yaml");
  REQUIRE(app.get_subcommands().size() == 1);
  CHECK(app.get_subcommands().front() == deploy);

  r = parse(app, {"drain", "--timeout=2.5"});
  CHECK(r.ok());
  CHECK(timeout == 2.5);

  r = parse(app, {"drain", "--help"});
  CHECK(r.help);
  CHECK(app.help().find("--timeout") != std::string::npos);

  CHECK(parse(app, {"drain", "--timeout", "-1"}).error ==
        "--timeout: expected a number >= 0, got '-1'");
  CHECK(parse(app, {"drain", "--bogus"}).error == "unknown flag '--bogus'");
  CHECK(parse(app, {"deploy", "a", "b"}).error == "unexpected argument 'b'");
  CHECK(parse(app, {"deploy"}).error == "FILE is required");
  CHECK(parse(app, {"bogus"}).error == "unexpected argument 'bogus'");
}

}  // namespace
}  // namespace serve::cli
