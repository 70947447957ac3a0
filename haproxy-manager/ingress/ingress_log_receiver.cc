#include "haproxy-manager/ingress/ingress_log_receiver.h"

#include <errno.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/str_cat.h"

namespace serve::manager {

namespace {

// Larger than any line HAProxy sends (`len 4096` in the template); MSG_TRUNC tells a longer one.
constexpr std::size_t kMaxDatagram = 65536;

Status errnoError(const std::string& what, int error) {
  return absl::UnavailableError(absl::StrCat(what, ": ", ::strerror(error)));
}

}  // namespace

IngressLogReceiver::IngressLogReceiver(std::string socket_path, IngressMetrics& metrics)
    : path_(std::move(socket_path)), metrics_(metrics) {}

IngressLogReceiver::~IngressLogReceiver() { stop(); }

Status IngressLogReceiver::start() {
  if (fd_ >= 0) {
    return absl::FailedPreconditionError("the ingress log receiver is already started");
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path_.empty() || path_.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ingress log socket \"", path_, "\" is ", path_.size(), " bytes long; a unix socket ",
        "path takes 1 to ", sizeof(address.sun_path) - 1));
  }
  ::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
  const auto* sa = reinterpret_cast<const sockaddr*>(&address);

  // A socket file left by a manager that died is removed; one that somebody still receives on
  // (connect succeeds) is not ours to take, and neither is a file of another kind.
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("ingress log socket ", path_, " exists and is not a socket"));
    }
    const int probe = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (probe < 0) {
      return errnoError("socket", errno);
    }
    const bool in_use = ::connect(probe, sa, sizeof(address)) == 0;
    ::close(probe);
    if (in_use) {
      return absl::FailedPreconditionError(
          absl::StrCat("another process receives on the ingress log socket ", path_));
    }
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
      return errnoError(absl::StrCat("cannot remove the stale socket ", path_), errno);
    }
  } else if (errno != ENOENT) {
    return errnoError(absl::StrCat("cannot inspect ", path_), errno);
  }

  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return errnoError("socket", errno);
  }
  if (::bind(fd, sa, sizeof(address)) != 0) {
    const int error = errno;
    ::close(fd);
    return errnoError(absl::StrCat("cannot bind the ingress log socket ", path_), error);
  }
  // The state directory is 0700 already; 0600 keeps the socket private where it is not.
  const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (::chmod(path_.c_str(), 0600) != 0 || wake < 0) {
    const int error = errno;
    ::close(fd);
    if (wake >= 0) {
      ::close(wake);
    }
    ::unlink(path_.c_str());
    return errnoError(absl::StrCat("cannot set up the ingress log socket ", path_), error);
  }
  fd_ = fd;
  wake_fd_ = wake;
  thread_ = std::thread([this] { run(); });
  return absl::OkStatus();
}

void IngressLogReceiver::stop() {
  if (thread_.joinable()) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(path_.c_str());
    fd_ = -1;
  }
  if (wake_fd_ >= 0) {
    ::close(wake_fd_);
    wake_fd_ = -1;
  }
}

void IngressLogReceiver::run() {
  std::vector<char> buffer(kMaxDatagram);
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      spdlog::error("ingress log receiver: poll: {}; ingress metrics stop", ::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) {
      return;
    }
    // Drain everything queued before sleeping again: the queue holds few datagrams (see the
    // header), so the sooner it is empty the fewer HAProxy drops.
    while (true) {
      const ssize_t got = ::recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_TRUNC);
      if (got < 0) {
        if (errno == EINTR) {
          continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          spdlog::warn("ingress log receiver: recv: {}", ::strerror(errno));
        }
        break;
      }
      datagrams_.fetch_add(1, std::memory_order_relaxed);
      if (static_cast<std::size_t>(got) > buffer.size()) {
        metrics_.recordUnparseable();
        continue;
      }
      handle(std::string_view(buffer.data(), static_cast<std::size_t>(got)));
    }
  }
}

void IngressLogReceiver::handle(std::string_view datagram) {
  StatusOr<IngressRecord> record = parseIngressLog(datagram);
  if (record.ok()) {
    metrics_.record(*record);
    return;
  }
  if (absl::IsNotFound(record.status())) {
    return;  // HAProxy's own notices ("Proxy http stopped ..." at a reload)
  }
  metrics_.recordUnparseable();
  if (!warned_) {
    warned_ = true;  // one line says what is wrong; the counter says how often
    spdlog::warn(
        "ingress log receiver: {} (later ones are only counted in "
        "serve_ingress_log_errors_total)",
        messageOf(record.status()));
  }
}

}  // namespace serve::manager
