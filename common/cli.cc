#include "common/cli.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <system_error>
#include <utility>

namespace serve::cli {
namespace {

// The shortest text that reads back as `d`: 0.1, 3600, 1e+09.
std::string formatNumber(double d) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, d);
  return std::string(buffer, ec == std::errc() ? end : buffer);
}

std::string numberRule(double lo, double hi, bool lo_open) {
  if (std::isinf(hi)) {
    return std::string("a number ") + (lo_open ? "> " : ">= ") + formatNumber(lo);
  }
  return std::string("a number in ") + (lo_open ? "(" : "[") + formatNumber(lo) + ", " +
         formatNumber(hi) + "]";
}

// Empty when `text` is a finite number in the range, else the error.
std::string checkNumber(const std::string& text, double lo, double hi, bool lo_open,
                        const std::string& rule, const std::string& shown) {
  double d = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !std::isfinite(d) ||
      d < lo || (lo_open && d == lo) || d > hi) {
    return "expected " + rule + ", got '" + shown + "'";
  }
  return {};
}

}  // namespace

CLI::Validator integerIn(int64_t lo, int64_t hi) {
  const std::string rule =
      hi == std::numeric_limits<int64_t>::max()
          ? "an integer >= " + std::to_string(lo)
          : "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [lo, hi, rule](std::string& value) -> std::string {
        int64_t v = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
        if (value.empty() || ec != std::errc() || end != value.data() + value.size() || v < lo ||
            v > hi) {
          return "expected " + rule + ", got '" + value + "'";
        }
        value = std::to_string(v);
        return {};
      },
      "", "integerIn");
}

CLI::Validator numberIn(double lo, double hi, bool lo_open) {
  const std::string rule = numberRule(lo, hi, lo_open);
  return CLI::Validator(
      [lo, hi, lo_open, rule](std::string& value) {
        return checkNumber(value, lo, hi, lo_open, rule, value);
      },
      "", "numberIn");
}

CLI::Validator secondsIn(double lo, double hi) {
  const std::string rule = "seconds in [" + formatNumber(lo) + ", " + formatNumber(hi) + "]";
  return CLI::Validator(
      [lo, hi, rule](std::string& value) -> std::string {
        std::string number = value;
        if (!number.empty() && number.back() == 's') {
          number.pop_back();
        }
        std::string error = checkNumber(number, lo, hi, false, rule, value);
        if (error.empty()) {
          value = number;
        }
        return error;
      },
      "", "secondsIn");
}

CLI::Validator keyValue(const keys::Key& key) {
  const std::string rule = keys::ruleText(key);
  return CLI::Validator(
      [row = key, rule](std::string& value) -> std::string {
        const char* end = value.data() + value.size();
        if (row.type == keys::Type::kInt) {
          int64_t v = 0;
          auto [stop, ec] = std::from_chars(value.data(), end, v);
          if (value.empty() || ec != std::errc() || stop != end ||
              !keys::accepts(row, static_cast<double>(v))) {
            return "expected " + rule + ", got '" + value + "'";
          }
          value = std::to_string(v);
          return {};
        }
        double d = 0;
        auto [stop, ec] = std::from_chars(value.data(), end, d);
        if (value.empty() || ec != std::errc() || stop != end || !keys::accepts(row, d)) {
          return "expected " + rule + ", got '" + value + "'";
        }
        return {};
      },
      "", "keyValue");
}

CLI::Validator nonEmpty() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        return value.empty() ? "expected a non-empty value" : "";
      },
      "", "nonEmpty");
}

void readInOrder(CLI::App& app) {
  for (CLI::Option* option : app.get_options()) {
    option->trigger_on_parse();
  }
  // CLI11's own help flag is acted on after every argument has been read and checked.
  app.set_help_flag();
  app.add_flag_callback(
         "-h,--help",
         [&app] {
           if (app.remaining_size() > 0) {
             throw CLI::ExtrasError(app.remaining());  // an unknown argument came first
           }
           throw CLI::CallForHelp();
         },
         "Print this help message and exit")
      ->trigger_on_parse();
}

ParseResult parse(CLI::App& app, std::vector<std::string> args) {
  std::vector<std::string> reversed;  // CLI11 reads the vector from its back
  reversed.reserve(args.size());
  for (auto it = args.rbegin(); it != args.rend(); ++it) {
    if (it->starts_with("--") && it->size() > 3 && it->find('=') == it->size() - 1) {
      reversed.emplace_back();
      reversed.push_back(it->substr(0, it->size() - 1));
    } else {
      reversed.push_back(std::move(*it));
    }
  }
  ParseResult result;
  try {
    app.parse(reversed);
    return result;
  } catch (const CLI::CallForHelp&) {
    result.help = true;
    return result;
  } catch (const CLI::ParseError& e) {
    const std::vector<std::string> extra = app.remaining(true);
    if (extra.empty()) {
      result.error = e.what();
      // CLI11 says "--port: 1 required N missing" when the arguments end before a value.
      if (const auto colon = result.error.find(": ");
          dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr && colon != std::string::npos &&
          result.error.ends_with(" missing")) {
        result.error = result.error.substr(0, colon) + ": missing value";
      }
      return result;
    }
    // An argument nothing accepts came before the error (with readInOrder; without it CLI11
    // reads every argument before it checks any): that argument is the error.
    const std::string& first = extra.front();
    if (first.starts_with("-")) {
      result.error = "unknown flag '" + first.substr(0, first.find('=')) + "'";
    } else {
      result.error = "unexpected argument '" + first + "'";
    }
    return result;
  }
}

}  // namespace serve::cli
