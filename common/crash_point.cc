#include "common/crash_point.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <cstdlib>
#include <mutex>
#include <string>

#include "spdlog/spdlog.h"

namespace serve {
namespace {

struct Target {
  std::string name;  // empty: no crash point is set
  long hit = 1;      // which arrival kills
};

// The environment, read once.
const Target& target() {
  static const Target parsed = [] {
    Target t;
    const char* text = std::getenv("SERVE_TEST_CRASH_AT");
    if (text == nullptr || *text == '\0') {
      return t;
    }
    std::string_view spec(text);
    const std::size_t colon = spec.rfind(':');
    t.name = std::string(spec.substr(0, colon));
    if (colon != std::string_view::npos) {
      std::string_view count = spec.substr(colon + 1);
      long n = 0;
      auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
      if (ec != std::errc() || end != count.data() + count.size() || n < 1) {
        spdlog::error(
            "SERVE_TEST_CRASH_AT={}: the count after ':' must be a whole number >= 1; "
            "no crash point is set",
            spec);
        t.name.clear();
        return t;
      }
      t.hit = n;
    }
    return t;
  }();
  return parsed;
}

std::atomic<bool> armed{false};
std::mutex count_mu;
long arrivals = 0;

}  // namespace

void armCrashPoints() {
  if (!target().name.empty()) {
    armed.store(true, std::memory_order_relaxed);
  }
}

void crashPoint(std::string_view name) {
  if (!armed.load(std::memory_order_relaxed) || name != target().name) {
    return;
  }
  std::lock_guard<std::mutex> lock(count_mu);
  if (++arrivals != target().hit) {
    return;
  }
  spdlog::warn("crash point {} (arrival {}): SERVE_TEST_CRASH_AT kills this process", name,
               arrivals);
  spdlog::default_logger()->flush();
  ::kill(::getpid(), SIGKILL);
  std::_Exit(137);  // not reached
}

}  // namespace serve
