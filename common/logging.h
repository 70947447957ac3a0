#pragma once

// Logging for both binaries: spdlog's default logger writes to stderr (unless
// RAY_SERVE_LOG_TO_STDERR=0) and to <log_dir>/<component>.log. Stdout is reserved for the
// one-JSON-object-per-line events a supervisor reads.
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

namespace serve {

struct LoggingOptions {
  std::string component;  // file name stem, e.g. "replica_digits_classifier_1234"
  std::string log_dir = "logs/serve";
  bool to_stderr = true;
  size_t request_log_buffer = 1;  // RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE
};

// Installs the default logger. Fails when the log directory cannot be created.
Status setupLogging(const LoggingOptions& options);

// Access log lines, buffered `buffer_size` at a time so busy replicas do not pay a write per
// request; an error line flushes what is buffered at once, so the lines that explain it are
// never stuck in memory.
class RequestLog {
 public:
  explicit RequestLog(size_t buffer_size) : buffer_size_(std::max<size_t>(1, buffer_size)) {}
  ~RequestLog() { flush(); }

  void info(std::string line);
  void error(std::string line);
  void flush();

 private:
  void flushLocked();

  const size_t buffer_size_;
  std::mutex mu_;  // guards buffer_
  std::vector<std::string> buffer_;
};

}  // namespace serve
