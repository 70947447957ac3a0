#include "common/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <filesystem>

namespace serve {

Status setupLogging(const LoggingOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.log_dir, ec);
  if (ec) {
    return absl::InvalidArgumentError("cannot create log directory '" + options.log_dir +
                                      "': " + ec.message());
  }
  std::vector<spdlog::sink_ptr> sinks;
  try {
    std::string file = options.log_dir + "/" + options.component + ".log";
    sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(file));
  } catch (const spdlog::spdlog_ex& e) {
    return absl::InvalidArgumentError(std::string("cannot open log file: ") + e.what());
  }
  if (options.to_stderr) {
    sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  }
  auto logger = std::make_shared<spdlog::logger>(options.component, sinks.begin(), sinks.end());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ %n %v");
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

void RequestLog::info(std::string line) {
  std::lock_guard lock(mu_);
  buffer_.push_back(std::move(line));
  if (buffer_.size() >= buffer_size_) {
    flushLocked();
  }
}

void RequestLog::error(std::string line) {
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
  if (buffer_.empty()) {
    return;
  }
  for (const std::string& line : buffer_) {
    spdlog::info("{}", line);
  }
  buffer_.clear();
  spdlog::default_logger()->flush();
}

}  // namespace serve
