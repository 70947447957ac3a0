#include "common/logging.h"

#include <doctest/doctest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace serve {
namespace {

// A log directory of its own, and the default logger pointed at it for the test's duration.
struct LogFixture {
  std::string dir;
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();

  LogFixture() {
    dir =
        (std::filesystem::temp_directory_path() / ("serve-log-test-" + std::to_string(::getpid())))
            .string();
    LoggingOptions options;
    options.component = "unit";
    options.log_dir = dir;
    options.to_stderr = false;
    REQUIRE(setupLogging(options).ok());
  }
  ~LogFixture() {
    spdlog::set_default_logger(previous);
    std::filesystem::remove_all(dir);
  }

  // Lines of the log file that contain `needle`.
  int count(const std::string& needle) const {
    std::ifstream in(dir + "/unit.log");
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      n += line.find(needle) != std::string::npos ? 1 : 0;
    }
    return n;
  }
};

}  // namespace

TEST_CASE("RequestLog holds lines until its buffer is full") {
  LogFixture f;
  RequestLog log(3);
  log.info("access one");
  log.info("access two");
  CHECK(f.count("access") == 0);
  log.info("access three");
  CHECK(f.count("access") == 3);
}

TEST_CASE("RequestLog writes buffered lines at once when an error line arrives") {
  LogFixture f;
  RequestLog log(1000);
  log.info("access before");
  log.info("access before");
  CHECK(f.count("access before") == 0);
  log.error("access failed");
  CHECK(f.count("access before") == 2);
  CHECK(f.count("access failed") == 1);
}

TEST_CASE("RequestLog with a buffer of one writes every line") {
  LogFixture f;
  RequestLog log(1);
  log.info("access single");
  CHECK(f.count("access single") == 1);
}

TEST_CASE("setupLogging names the directory it cannot create") {
  LoggingOptions options;
  options.component = "unit";
  options.log_dir = "/proc/cannot-create-here";
  Status st = setupLogging(options);
  REQUIRE_FALSE(st.ok());
  CHECK(messageOf(st).starts_with("cannot create log directory '/proc/cannot-create-here'"));
}

}  // namespace serve
