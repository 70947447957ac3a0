#include "haproxy-manager/haproxy/unix_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/unique_fd.h"

namespace serve::manager {
namespace {

using Clock = std::chrono::steady_clock;

using Fd = UniqueFd;

Status errnoStatus(const std::string& path, const char* step, int err) {
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat(path, ": ", step, ": ", std::strerror(err)));
}

std::string secondsText(std::chrono::milliseconds timeout) {
  return absl::StrCat(static_cast<double>(timeout.count()) / 1000.0, "s");
}

// Waits for `events` on `fd` until `deadline`. Returns false on timeout.
StatusOr<bool> waitFor(int fd, short events, Clock::time_point deadline, const std::string& path) {
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
      return errnoStatus(path, "poll", errno);
    }
  }
}

}  // namespace

StatusOr<std::string> unixSocketRequest(const std::string& path, std::string_view request,
                                        std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": a unix socket path must have 1 to ",
                                                   sizeof(address.sun_path) - 1, " bytes"));
  }
  std::memcpy(address.sun_path, path.data(), path.size());

  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return errnoStatus(path, "socket", errno);
  }
  // A non-blocking connect to a unix socket either completes at once or fails with EAGAIN when
  // the listener's backlog is full; it never reports EINPROGRESS. A full backlog means the
  // process is busy (or being replaced), so retry until the deadline like a blocking connect.
  while (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    if (errno != EAGAIN && errno != EINTR) {
      return errnoStatus(path, "connect", errno);
    }
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(path, ": connect: backlog still full after ", secondsText(timeout)));
    }
    ::usleep(1000);
  }

  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n >= 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN) {
      return errnoStatus(path, "send", errno);
    }
    StatusOr<bool> ready = waitFor(fd.get(), POLLOUT, deadline, path);
    if (!ready.ok()) {
      return ready.status();
    }
    if (!*ready) {
      return absl::DeadlineExceededError(absl::StrCat(path, ": request not sent within ",
                                                      secondsText(timeout), " (", sent, " of ",
                                                      request.size(), " bytes)"));
    }
  }

  std::string reply;
  char buffer[16 * 1024];
  while (true) {
    const ssize_t n = ::recv(fd.get(), buffer, sizeof(buffer), 0);
    if (n > 0) {
      reply.append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      return reply;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN) {
      return errnoStatus(path, "recv", errno);
    }
    StatusOr<bool> ready = waitFor(fd.get(), POLLIN, deadline, path);
    if (!ready.ok()) {
      return ready.status();
    }
    if (!*ready) {
      return absl::DeadlineExceededError(absl::StrCat(path, ": no end of reply within ",
                                                      secondsText(timeout), " (got ", reply.size(),
                                                      " bytes)"));
    }
  }
}

}  // namespace serve::manager
