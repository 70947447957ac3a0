#include "common/env_parse.h"

#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace serve::env_parse {
namespace {

EnvLookup envFrom(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) {
      return std::nullopt;
    }
    return it->second;
  };
}

TEST_CASE("parseInteger takes the whole text as a decimal integer") {
  CHECK(parseInteger("0") == 0);
  CHECK(parseInteger("-12") == -12);
  CHECK(parseInteger("9223372036854775807") == INT64_MAX);
  for (const std::string bad :
       {"", " 1", "1 ", "+1", "1.0", "0x10", "1e3", "abc", "9223372036854775808"}) {
    CAPTURE(bad);
    CHECK_FALSE(parseInteger(bad).has_value());
  }
}

TEST_CASE("parseNumber takes the whole text as a finite number") {
  CHECK(parseNumber("5") == 5.0);
  CHECK(parseNumber("0.25") == 0.25);
  CHECK(parseNumber("-1.5") == -1.5);
  CHECK(parseNumber("1e3") == 1000.0);
  for (const std::string bad : {"", " 1", "1 ", "+1", "5s", "inf", "nan", "1e999", "0x1p3"}) {
    CAPTURE(bad);
    CHECK_FALSE(parseNumber(bad).has_value());
  }
}

TEST_CASE("parseDuration takes seconds, <n>s and <n>ms") {
  CHECK(parseDuration("5") == 5.0);
  CHECK(parseDuration("0.25") == 0.25);
  CHECK(parseDuration("5s") == 5.0);
  CHECK(parseDuration("1.5s") == 1.5);
  CHECK(parseDuration("250ms") == 0.25);
  CHECK(parseDuration("0.5ms") == 0.0005);
  CHECK(parseDuration("0ms") == 0.0);
  for (const std::string bad : {"", "s", "ms", "5 s", "5S", "5MS", "5m", "5us", "5h", "5sec", "5ss",
                                "5mss", "s5", "+5s", "infs", "nanms"}) {
    CAPTURE(bad);
    CHECK_FALSE(parseDuration(bad).has_value());
  }
}

TEST_CASE("durationText writes a bound the way a user would") {
  CHECK(durationText(0.001) == "1ms");
  CHECK(durationText(0.25) == "250ms");
  CHECK(durationText(1) == "1s");
  CHECK(durationText(3600) == "3600s");
}

TEST_CASE("settings keep their fallback when unset and name variable, value and rule otherwise") {
  const EnvLookup empty = envFrom({});
  CHECK(intSetting(empty, "I", 7, 1, 10)->value == 7);
  CHECK_FALSE(intSetting(empty, "I", 7, 1, 10)->raw.has_value());
  CHECK(*numberSetting(empty, "N", 2.5, 0, 10) == 2.5);
  CHECK(*durationSetting(empty, "D", 0.25, 0.001, 3600) == 0.25);
  CHECK(*boolSetting(empty, "B", true));

  const EnvLookup env = envFrom({{"I", "3"}, {"N", "1e1"}, {"D", "250ms"}, {"B", "0"}});
  const StatusOr<Setting<int>> i = intSetting(env, "I", 7, 1, 10);
  REQUIRE(i.ok());
  CHECK(i->value == 3);
  CHECK(i->raw == std::optional<std::string>("3"));
  CHECK(*numberSetting(env, "N", 2.5, 0, 10) == 10);
  CHECK(*durationSetting(env, "D", 5, 0.001, 3600) == 0.25);
  CHECK_FALSE(*boolSetting(env, "B", true));

  const EnvLookup bad =
      envFrom({{"I", "11"}, {"N", "-1"}, {"D", "0s"}, {"B", "yes"}, {"L", "a\nb"}});
  CHECK(messageOf(intSetting(bad, "I", 7, 1, 10).status()) ==
        "I=11: expected an integer in [1, 10]");
  CHECK(messageOf(numberSetting(bad, "N", 2.5, 0, 10).status()) ==
        "N=-1: expected a number in [0, 10]");
  CHECK(messageOf(durationSetting(bad, "D", 5, 0.001, 3600).status()) ==
        "D=0s: expected a duration in [1ms, 3600s], written as seconds (5, 0.25) or with a unit "
        "(5s, 250ms)");
  CHECK(messageOf(boolSetting(bad, "B", true).status()) == "B=yes: expected 0 or 1");
  CHECK(messageOf(boolSetting(bad, "L", true).status()) == "L=a\\nb: expected 0 or 1");
  CHECK(intSetting(bad, "I", 7, 1, 10).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("envError escapes the value and cuts it short") {
  CHECK(messageOf(envError("X", "a\"b", "r")) == "X=a\\\"b: expected r");
  CHECK(messageOf(envError("X", std::string(100, 'v'), "r")) ==
        "X=" + std::string(80, 'v') + "...: expected r");
}

}  // namespace
}  // namespace serve::env_parse
