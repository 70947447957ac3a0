#pragma once

// The replica's private control channel to its manager: a unix stream socket in the manager's
// state directory (mode 0600), one JSON request line in, one JSON reply line out, then close.
// Nothing here is reachable over the network, unlike the HTTP port that HAProxy forwards to.
// Requests are handled one at a time on a thread of their own, so a slow one (a user's
// reconfigure) never holds up health checks or inference.
#include <functional>
#include <string>
#include <thread>

#include "common/status.h"
#include "nlohmann/json.hpp"

namespace serve {

class ControlSocket {
 public:
  // `handle` answers one request; it runs on the socket's thread.
  using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;

  ControlSocket(std::string path, Handler handle);
  ~ControlSocket();  // stops the thread and removes the socket file
  ControlSocket(const ControlSocket&) = delete;
  ControlSocket& operator=(const ControlSocket&) = delete;

  // Binds `path` (replacing a stale socket file, never any other kind of file) and starts
  // answering. Errors name the path and the failing step.
  Status start();

 private:
  void loop();
  void serveOne(int fd);

  const std::string path_;
  Handler handle_;
  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};  // a pipe: a byte written to [1] ends loop()
  std::thread thread_;
};

// Largest request line accepted; a longer one is answered with an error and the connection closed.
inline constexpr std::size_t kMaxControlRequestBytes = 4 << 20;

}  // namespace serve
