#pragma once

// Strict parsing of RAY_SERVE_* values, shared by readReplicaEnv and readManagerEnv so that both
// processes accept the same spellings and word their errors the same way:
// "NAME=value: expected <rule>". Internal to the env readers; everything else takes the parsed
// structs.
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/config_keys.h"
#include "common/env_settings.h"
#include "common/status.h"

namespace serve::env_parse {

// The value as the user set it, escaped so a newline in it cannot split a log line, and cut
// short so a huge value does not become a huge message.
inline std::string shown(std::string_view value_std) {
  const absl::string_view value(value_std.data(), value_std.size());
  constexpr std::size_t kMaxShown = 80;
  if (value.size() > kMaxShown) {
    return absl::StrCat(absl::CHexEscape(value.substr(0, kMaxShown)), "...");
  }
  return absl::CHexEscape(value);
}

// "NAME=value: expected <rule>".
inline Status envError(std::string_view name, std::string_view value, std::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(absl::string_view(name.data(), name.size()), "=",
                                                 shown(value), ": expected ",
                                                 absl::string_view(rule.data(), rule.size())));
}

// The whole text as a decimal integer: no sign other than '-', no spaces, no trailing text.
inline std::optional<std::int64_t> parseInteger(std::string_view text) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || stop != end) {
    return std::nullopt;
  }
  return value;
}

// The whole text as a finite decimal number ("5", "0.25", "1e3"); no '+', spaces, "inf", "nan".
inline std::optional<double> parseNumber(std::string_view text) {
  double value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || stop != end || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

// Seconds written plainly ("5", "0.25") or with HAProxy's unit suffixes "s" and "ms" ("5s",
// "250ms"), since Ray documents its health-check defaults that way.
inline std::optional<double> parseDuration(std::string_view text) {
  // Dividing (not multiplying by 0.001) keeps "250ms" equal to 0.25 and "1ms" to 0.001.
  double divisor = 1;
  if (text.ends_with("ms")) {
    text.remove_suffix(2);
    divisor = 1000;
  } else if (text.ends_with("s")) {
    text.remove_suffix(1);
  }
  std::optional<double> value = parseNumber(text);
  if (!value.has_value()) {
    return std::nullopt;
  }
  return *value / divisor;
}

// A variable's value and whether the user set it, so cross-checks can blame a variable that
// was actually set rather than a default.
template <typename T>
struct Setting {
  T value;
  std::optional<std::string> raw;
};

inline StatusOr<Setting<int>> intSetting(const EnvLookup& env, const char* name, int fallback,
                                         int min, int max) {
  std::optional<std::string> raw = env(name);
  if (!raw.has_value()) {
    return Setting<int>{fallback, std::nullopt};
  }
  std::optional<std::int64_t> value = parseInteger(*raw);
  if (!value.has_value() || *value < min || *value > max) {
    return envError(name, *raw, absl::StrCat("an integer in [", min, ", ", max, "]"));
  }
  return Setting<int>{static_cast<int>(*value), std::move(raw)};
}

inline StatusOr<double> numberSetting(const EnvLookup& env, const char* name, double fallback,
                                      double min, double max) {
  std::optional<std::string> raw = env(name);
  if (!raw.has_value()) {
    return fallback;
  }
  std::optional<double> value = parseNumber(*raw);
  if (!value.has_value() || *value < min || *value > max) {
    return envError(name, *raw, absl::StrCat("a number in [", min, ", ", max, "]"));
  }
  return *value;
}

// A variable with a row in common/config_keys.h: its range and its rule come from the row, so
// the reference and the error say the same. `fallback` is the value when unset (the row's
// default, unless another setting changes it).
inline StatusOr<Setting<int>> intSetting(const EnvLookup& env, const keys::Key& key, int fallback) {
  const std::string name(key.name);
  std::optional<std::string> raw = env(name);
  if (!raw.has_value()) {
    return Setting<int>{fallback, std::nullopt};
  }
  std::optional<std::int64_t> value = parseInteger(*raw);
  if (!value.has_value() || !keys::accepts(key, static_cast<double>(*value))) {
    return envError(name, *raw, keys::ruleText(key));
  }
  return Setting<int>{static_cast<int>(*value), std::move(raw)};
}

inline StatusOr<double> numberSetting(const EnvLookup& env, const keys::Key& key, double fallback) {
  const std::string name(key.name);
  std::optional<std::string> raw = env(name);
  if (!raw.has_value()) {
    return fallback;
  }
  std::optional<double> value = parseNumber(*raw);
  if (!value.has_value() || !keys::accepts(key, *value)) {
    return envError(name, *raw, keys::ruleText(key));
  }
  return *value;
}

// A bound as the user would write it: "250ms" below a second, else "5s".
inline std::string durationText(double seconds) {
  if (seconds < 1) {
    return absl::StrCat(seconds * 1000, "ms");
  }
  return absl::StrCat(seconds, "s");
}

inline StatusOr<double> durationSetting(const EnvLookup& env, const char* name, double fallback,
                                        double min, double max) {
  std::optional<std::string> raw = env(name);
  if (!raw.has_value()) {
    return fallback;
  }
  std::optional<double> value = parseDuration(*raw);
  if (!value.has_value() || *value < min || *value > max) {
    return envError(name, *raw,
                    absl::StrCat("a duration in [", durationText(min), ", ", durationText(max),
                                 "], written as seconds (5, 0.25) or with a unit (5s, 250ms)"));
  }
  return *value;
}

// "0" or "1", nothing else: Ray's spelling for its boolean variables.
inline StatusOr<bool> boolSetting(const EnvLookup& env, const char* name, bool fallback) {
  std::optional<std::string> raw = env(name);
  if (!raw.has_value()) {
    return fallback;
  }
  if (*raw == "0") {
    return false;
  }
  if (*raw == "1") {
    return true;
  }
  return envError(name, *raw, "0 or 1");
}

}  // namespace serve::env_parse
