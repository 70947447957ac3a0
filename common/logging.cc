#include "common/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <filesystem>

namespace serve {

Status setupLogging(const LoggingOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.log_dir, ec);
  if (ec) {
    return absl::InvalidArgumentError("cannot create log directory '" + options.log_dir +
                                      "': " + ec.message());
  }
  // The access logger writes raw text and the default logger a prefixed one; spdlog keeps the
  // format in the sink, so each logger gets sinks of its own (the two file sinks append to the
  // same file).
  std::string file = options.log_dir + "/" + options.component + ".log";
  auto makeSinks = [&]() -> StatusOr<std::vector<spdlog::sink_ptr>> {
    std::vector<spdlog::sink_ptr> sinks;
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(file));
    } catch (const spdlog::spdlog_ex& e) {
      return absl::InvalidArgumentError(std::string("cannot open log file: ") + e.what());
    }
    if (options.to_stderr) {
      sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
    }
    return sinks;
  };
  auto main_sinks = makeSinks();
  auto access_sinks = makeSinks();
  if (!main_sinks.ok()) {
    return main_sinks.status();
  }
  if (!access_sinks.ok()) {
    return access_sinks.status();
  }
  auto logger =
      std::make_shared<spdlog::logger>(options.component, main_sinks->begin(), main_sinks->end());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ %n %v");
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  auto access =
      std::make_shared<spdlog::logger>(kAccessLogger, access_sinks->begin(), access_sinks->end());
  access->set_pattern("%v");
  spdlog::drop(kAccessLogger);
  spdlog::register_logger(access);
  // Lines below warn level are written within a second, so the file reads in order.
  spdlog::flush_every(std::chrono::seconds(1));
  return absl::OkStatus();
}

namespace {

// "2026-11-25T17:16:17.931Z": the seconds part is formatted once per second per thread.
void appendTimestamp(std::string& out) {
  using namespace std::chrono;
  thread_local time_t cached_second = -1;
  thread_local char cached[32];
  auto now = system_clock::now();
  time_t second = system_clock::to_time_t(now);
  if (second != cached_second) {
    std::tm tm{};
    gmtime_r(&second, &tm);
    std::strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
    cached_second = second;
  }
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  out += cached;
  out += '.';
  out += static_cast<char>('0' + ms / 100);
  out += static_cast<char>('0' + ms / 10 % 10);
  out += static_cast<char>('0' + ms % 10);
  out += "Z ";
}

}  // namespace

RequestLog::RequestLog(size_t buffer_size)
    : buffer_size_(std::max<size_t>(1, buffer_size)), logger_(spdlog::get(kAccessLogger)) {
  if (!logger_) {
    logger_ = spdlog::default_logger();
  }
}

void RequestLog::info(std::string_view line) {
  std::lock_guard lock(mu_);
  appendTimestamp(buffer_);
  buffer_ += line;
  buffer_ += '\n';
  if (++buffered_ >= buffer_size_) {
    flushLocked();
  }
}

void RequestLog::error(std::string_view line) {
  std::lock_guard lock(mu_);
  flushLocked();
  spdlog::error("{}", line);
  spdlog::default_logger()->flush();
}

void RequestLog::flush() {
  std::lock_guard lock(mu_);
  flushLocked();
}

void RequestLog::flushLocked() {
  if (buffered_ == 0) {
    return;
  }
  buffer_.pop_back();  // the sink adds the last newline
  logger_->info("{}", buffer_);
  logger_->flush();
  buffer_.clear();
  buffered_ = 0;
}

}  // namespace serve
