#pragma once

// Logging for both binaries: spdlog's default logger writes to stderr (unless
// RAY_SERVE_LOG_TO_STDERR=0) and to <log_dir>/<component>.log. Stdout is reserved for the
// one-JSON-object-per-line events a supervisor reads.
#include <spdlog/logger.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/status.h"

namespace serve {

struct LoggingOptions {
  std::string component;  // file name stem, e.g. "replica_digits_classifier_1234"
  std::string log_dir = "logs/serve";
  bool to_stderr = true;
  size_t request_log_buffer = 1;  // RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE
};

// The name of the logger access lines go to (same sinks as the default logger, no prefix).
inline constexpr const char* kAccessLogger = "access";

// Installs the default logger and the access logger. Fails when the log directory cannot be
// created.
Status setupLogging(const LoggingOptions& options);

// Access log lines, buffered `buffer_size` at a time so busy replicas do not pay a write per
// request; an error line flushes what is buffered at once, so the lines that explain it are
// never stuck in memory. Each line gets its own UTC timestamp when it is recorded.
class RequestLog {
 public:
  explicit RequestLog(size_t buffer_size);
  ~RequestLog() { flush(); }

  void info(std::string_view line);
  void error(std::string_view line);
  void flush();

 private:
  void flushLocked();

  const size_t buffer_size_;
  std::shared_ptr<spdlog::logger> logger_;
  std::mutex mu_;  // guards buffer_ and buffered_
  std::string buffer_;
  size_t buffered_ = 0;
};

}  // namespace serve
