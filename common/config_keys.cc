#include "common/config_keys.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <system_error>

namespace serve::keys {

std::string formatNumber(double value) {
  // Integers as integers: to_chars' shortest form would write 1000000 as "1e+06".
  if (std::trunc(value) == value && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<std::int64_t>(value));
  }
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, ec == std::errc() ? end : buffer);
}

namespace {

std::string rangeText(const Key& key) {
  const std::string what = key.type == Type::kInt ? "an integer" : "a number";
  if (key.max_is_limit) {
    return what + (key.min_open ? " > " : " >= ") + formatNumber(key.min);
  }
  return what + " in " + (key.min_open ? "(" : "[") + formatNumber(key.min) + ", " +
         formatNumber(key.max) + "]";
}

bool inRange(const Key& key, double value) {
  return value >= key.min && value <= key.max && !(key.min_open && value == key.min);
}

}  // namespace

std::string ruleText(const Key& key) {
  switch (key.type) {
    case Type::kInt:
    case Type::kNumber: {
      std::string range = rangeText(key);
      if (key.special_meaning.empty()) {
        return range;
      }
      const std::string special = formatNumber(key.special);
      const std::string meaning(key.special_meaning);
      if (inRange(key, key.special)) {
        return range + " (" + special + " = " + meaning + ")";
      }
      return special + " (" + meaning + ") or " + range;
    }
    case Type::kString:
      if (!key.choices.empty()) {
        std::string text = "one of ";
        for (std::size_t i = 0; i < key.choices.size(); ++i) {
          text += (i == 0 ? "" : ", ") + std::string(key.choices[i]);
        }
        return text;
      }
      return std::string(key.rule);
    case Type::kBool:
    case Type::kList:
    case Type::kMapping:
      return std::string(key.rule);
  }
  return std::string(key.rule);
}

std::string defaultText(const Key& key) {
  if (!key.default_text.empty()) {
    return std::string(key.default_text);
  }
  return formatNumber(key.default_value);
}

std::string_view typeName(Type type) {
  switch (type) {
    case Type::kInt:
      return "int";
    case Type::kNumber:
      return "number";
    case Type::kBool:
      return "bool";
    case Type::kString:
      return "string";
    case Type::kList:
      return "list";
    case Type::kMapping:
      return "mapping";
  }
  return "string";
}

bool accepts(const Key& key, double value) {
  if (!std::isfinite(value)) {
    return false;
  }
  return inRange(key, value) || (!key.special_meaning.empty() && value == key.special);
}

}  // namespace serve::keys
