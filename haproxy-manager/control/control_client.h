#pragma once

// A client of the control API for the CLI (libcurl, 127.0.0.1 only).
#include <string>

#include "common/status.h"

namespace serve::manager {

struct ControlReply {
  int status = 0;
  std::string body;
};

class ControlClient {
 public:
  // `token` may be empty for reads.
  ControlClient(int port, std::string token, double timeout_s = 120);

  StatusOr<ControlReply> get(const std::string& path) const;
  StatusOr<ControlReply> send(const std::string& method, const std::string& path,
                              const std::string& body,
                              const std::string& content_type = "application/json",
                              const std::string& extra_header = "") const;

 private:
  int port_;
  std::string token_;
  double timeout_s_;
};

}  // namespace serve::manager
