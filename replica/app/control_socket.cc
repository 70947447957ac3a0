#include "replica/app/control_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/unique_fd.h"
#include "spdlog/spdlog.h"

namespace serve {
namespace {

using Clock = std::chrono::steady_clock;

// A client gets this long to send its request line and to take the reply.
constexpr auto kExchangeTimeout = std::chrono::seconds(5);

Status errnoStatus(const std::string& path, const char* step, int err) {
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat("control socket ", path, ": ", step, ": ", std::strerror(err)));
}

// Waits for `events` on `fd` until `deadline`; false on timeout or error.
bool waitFor(int fd, short events, Clock::time_point deadline) {
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      return false;
    }
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) {
      return true;
    }
    if (n < 0 && errno != EINTR) {
      return false;
    }
  }
}

void writeAll(int fd, const std::string& text, Clock::time_point deadline) {
  std::size_t sent = 0;
  while (sent < text.size()) {
    const ssize_t n = ::send(fd, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN && waitFor(fd, POLLOUT, deadline)) {
      continue;
    }
    return;
  }
}

nlohmann::json errorReply(const std::string& message) {
  return {{"ok", false}, {"error", message}};
}

}  // namespace

ControlSocket::ControlSocket(std::string path, Handler handle)
    : path_(std::move(path)), handle_(std::move(handle)) {}

ControlSocket::~ControlSocket() {
  if (thread_.joinable()) {
    const char byte = 0;
    [[maybe_unused]] ssize_t n = ::write(wake_fds_[1], &byte, 1);
    thread_.join();
  }
  for (int fd : {listen_fd_, wake_fds_[0], wake_fds_[1]}) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  if (listen_fd_ >= 0) {
    ::unlink(path_.c_str());
  }
}

Status ControlSocket::start() {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path_.empty() || path_.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("--control-socket ", path_,
                                                   ": a unix socket path must have 1 to ",
                                                   sizeof(address.sun_path) - 1, " bytes"));
  }
  std::memcpy(address.sun_path, path_.data(), path_.size());
  // A socket left by a replica that was killed may be replaced; any other file may not.
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("control socket ", path_, ": exists and is not a socket; not replacing it"));
    }
    ::unlink(path_.c_str());
  }
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) {
    return errnoStatus(path_, "socket", errno);
  }
  // Created 0600 (umask for the bind only): only the manager's user may connect.
  const mode_t old_mask = ::umask(0177);
  const int bound =
      ::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  const int bind_errno = errno;
  ::umask(old_mask);
  if (bound != 0) {
    const Status failed = errnoStatus(path_, "bind", bind_errno);
    ::close(listen_fd_);
    listen_fd_ = -1;
    return failed;
  }
  if (::listen(listen_fd_, 8) != 0) {
    return errnoStatus(path_, "listen", errno);
  }
  if (::pipe2(wake_fds_, O_CLOEXEC) != 0) {
    return errnoStatus(path_, "pipe", errno);
  }
  thread_ = std::thread([this] { loop(); });
  return absl::OkStatus();
}

void ControlSocket::loop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
    const int n = ::poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      spdlog::error("control socket {}: poll: {}", path_, std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) {
      return;
    }
    if ((fds[0].revents & POLLIN) == 0) {
      continue;
    }
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      continue;
    }
    UniqueFd client(fd);
    serveOne(client.get());
  }
}

void ControlSocket::serveOne(int fd) {
  const Clock::time_point deadline = Clock::now() + kExchangeTimeout;
  std::string line;
  char buf[8192];
  while (line.find('\n') == std::string::npos) {
    if (line.size() > kMaxControlRequestBytes) {
      writeAll(fd,
               errorReply(absl::StrCat("request over ", kMaxControlRequestBytes, " bytes")).dump() +
                   "\n",
               deadline);
      return;
    }
    if (!waitFor(fd, POLLIN, deadline)) {
      return;  // nothing (more) within the timeout: drop the connection
    }
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n == 0) {
      break;  // the peer closed: take what came as the request
    }
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        continue;
      }
      return;
    }
    line.append(buf, static_cast<std::size_t>(n));
  }
  line = line.substr(0, line.find('\n'));
  nlohmann::json request = nlohmann::json::parse(line, nullptr, false);
  nlohmann::json reply;
  if (request.is_discarded() || !request.is_object() || !request.contains("op") ||
      !request["op"].is_string()) {
    reply = errorReply("expected one JSON object with a string \"op\" on one line");
  } else {
    reply = handle_(request);
  }
  // The handler may have taken long (a user's reconfigure); the reply gets its own time.
  writeAll(fd, reply.dump() + "\n", Clock::now() + kExchangeTimeout);
}

}  // namespace serve
