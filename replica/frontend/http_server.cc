#include "replica/frontend/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "replica/frontend/elastic_task_queue.h"

namespace serve {
namespace {

using Clock = std::chrono::steady_clock;

// The bounds on a request's head (request line and headers): what the library may buffer
// before a handler runs. HAProxy forwards at most tune.bufsize (16 KB) of head and 101
// headers, so a request through the proxy never comes near them.
constexpr size_t kMaxRequestHeadBytes = 64 * 1024;
constexpr size_t kMaxRequestHeadLines = 128;

int toPollMs(std::chrono::milliseconds d) {
  return static_cast<int>(std::max<int64_t>(0, d.count()));
}

// The answer to a request that did not arrive within request_read_timeout. Written raw because
// the library never reaches a handler for a request it could not read.
constexpr std::string_view kRequestTimeoutResponse =
    "HTTP/1.1 408 Request Timeout\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 30\r\n"
    "Connection: close\r\n"
    "\r\n"
    "Request not received in time.\n";
static_assert(kRequestTimeoutResponse.size() - kRequestTimeoutResponse.find("\r\n\r\n") - 4 == 30);

// The answer to a request line that runs past the head's bounds (the library closes such a
// connection without a word, since it never finished reading a request line).
constexpr std::string_view kBadRequestResponse =
    "HTTP/1.1 400 Bad Request\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 24\r\n"
    "Connection: close\r\n"
    "\r\n"
    "{\"error\":\"Bad request.\"}";
static_assert(kBadRequestResponse.size() - kBadRequestResponse.find("\r\n\r\n") - 4 == 24);

// The answer to a connection over max_connections, sent without reading a byte from it.
constexpr std::string_view kTooManyConnectionsResponse =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 22\r\n"
    "Retry-After: 1\r\n"
    "Connection: close\r\n"
    "\r\n"
    "Too many connections.\n";
static_assert(kTooManyConnectionsResponse.size() - kTooManyConnectionsResponse.find("\r\n\r\n") -
                  4 ==
              22);

// Set on the accepting thread while it closes a connection over max_connections.
thread_local bool t_refuse_connection = false;

// The connection threads. A connection is admitted only while `admit` says there is room;
// otherwise its task runs at once on the accepting thread, with t_refuse_connection set, so
// that process_and_close_socket answers 503 and closes it without reading from it.
class ConnectionPool final : public ElasticTaskQueue {
 public:
  ConnectionPool(size_t min_threads, size_t max_threads, std::function<bool()> admit)
      : ElasticTaskQueue(min_threads, max_threads), admit_(std::move(admit)) {}

  void enqueue(std::function<void()> fn) override {
    if (admit_()) {
      ElasticTaskQueue::enqueue(std::move(fn));
      return;
    }
    t_refuse_connection = true;
    fn();
    t_refuse_connection = false;
  }

 private:
  std::function<bool()> admit_;
};

// One client connection, served start to end on one pool thread. Buffers reads (the library's
// line reader asks for one byte at a time) and enforces the whole-request deadline.
class ConnectionStream : public httplib::Stream {
 public:
  ConnectionStream(int fd, const HttpServerOptions& options) : fd_(fd), options_(options) {}

  // Marks the start of a request: it must be read whole by now + request_read_timeout.
  void startRequest() {
    deadline_ = Clock::now() + options_.request_read_timeout;
    timed_out_ = false;
    complete_ = false;
    close_ = false;
    in_head_ = true;
    head_too_large_ = false;
    wrote_ = false;
    unread_bytes_ = 0;
    head_lines_ = 0;
  }
  bool timedOut() const { return timed_out_; }
  // The handler started: the request line and headers are read, what follows is the body.
  void markHeadRead() {
    in_head_ = false;
    unread_bytes_ = 0;
  }
  // The handler took a piece of the body; the bytes before it were body or chunk framing.
  void markBodyProgress() { unread_bytes_ = 0; }
  // The request's head went past kMaxRequestHeadBytes or kMaxRequestHeadLines; the library
  // saw a failed read.
  bool headTooLarge() const { return head_too_large_; }
  bool wroteAnything() const { return wrote_; }
  // The handler read the whole request (the library reached it with a well-framed request and
  // its body was read to the end); anything else leaves unknown bytes on the connection.
  void markComplete() { complete_ = true; }
  bool complete() const { return complete_; }
  void markClose() { close_ = true; }
  bool closeRequested() const { return close_; }
  bool hasBufferedData() const { return buf_pos_ < buf_len_; }

  bool is_readable() const override { return hasBufferedData() || waitFor(POLLIN); }
  bool is_writable() const override { return waitFor(POLLOUT); }

  ssize_t read(char* ptr, size_t size) override {
    if (hasBufferedData()) {
      return account(ptr, copyBuffered(ptr, size));
    }
    if (!waitFor(POLLIN)) {
      return -1;
    }
    if (size >= sizeof(buf_)) {
      return account(ptr, ::recv(fd_, ptr, size, 0));
    }
    ssize_t n = ::recv(fd_, buf_, sizeof(buf_), 0);
    if (n <= 0) {
      return n;
    }
    buf_pos_ = 0;
    buf_len_ = static_cast<size_t>(n);
    return account(ptr, copyBuffered(ptr, size));
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (timed_out_) {
      // The library answers a request it could not read with 400; this connection already
      // got (or gets now) the 408 that says what happened, so its bytes are dropped.
      if (!timeout_answered_) {
        timeout_answered_ = true;
        sendAll(kRequestTimeoutResponse.data(), kRequestTimeoutResponse.size());
      }
      return static_cast<ssize_t>(size);
    }
    if (!waitFor(POLLOUT)) {
      return -1;
    }
    wrote_ = true;
    return ::send(fd_, ptr, size, MSG_NOSIGNAL);
  }

  // The library asks for both addresses on every request; they cannot change during a
  // connection, so they are looked up once.
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    if (remote_port_ < 0) {
      sockaddrToString(true, remote_ip_, remote_port_);
    }
    ip = remote_ip_;
    port = remote_port_;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    if (local_port_ < 0) {
      sockaddrToString(false, local_ip_, local_port_);
    }
    ip = local_ip_;
    port = local_port_;
  }
  socket_t socket() const override { return fd_; }

  // After a timed-out request the library may have written nothing at all (request line never
  // finished): make sure the client sees the 408.
  void answerTimeoutIfNeeded() {
    if (timed_out_ && !timeout_answered_) {
      timeout_answered_ = true;
      sendAll(kRequestTimeoutResponse.data(), kRequestTimeoutResponse.size());
    }
  }

  // A request line too long for the head's bounds gets no answer from the library: this one.
  // True when it was sent.
  bool answerHeadTooLargeIfNeeded() {
    if (!head_too_large_ || wrote_ || timed_out_) {
      return false;
    }
    wrote_ = true;
    sendAll(kBadRequestResponse.data(), kBadRequestResponse.size());
    return true;
  }

 private:
  // Counts `n` bytes just handed to the library that the handler has not taken as body. The
  // library buffers a line whole before it checks its length (the request line, a header line,
  // a chunk-size line) and keeps every header, so without this bound a client could make one
  // request hold any amount of memory until request_read_timeout. -1 (a failed read) once the
  // head passes kMaxRequestHeadBytes or kMaxRequestHeadLines, or once kMaxRequestHeadBytes
  // arrive in the body without a byte of body data (an endless chunk-size line).
  ssize_t account(const char* ptr, ssize_t n) {
    if (n <= 0) {
      return n;
    }
    unread_bytes_ += static_cast<size_t>(n);
    if (in_head_) {
      head_lines_ += static_cast<size_t>(std::count(ptr, ptr + n, '\n'));
    }
    if (unread_bytes_ > kMaxRequestHeadBytes || head_lines_ > kMaxRequestHeadLines) {
      head_too_large_ = in_head_;
      return -1;
    }
    return n;
  }

  ssize_t copyBuffered(char* ptr, size_t size) {
    size_t n = std::min(size, buf_len_ - buf_pos_);
    std::memcpy(ptr, buf_ + buf_pos_, n);
    buf_pos_ += n;
    return static_cast<ssize_t>(n);
  }

  // Waits until the socket is ready for `events`, bounded by the per-call timeout and, while a
  // request is being read, by what is left of its deadline.
  bool waitFor(short events) const {
    auto per_call = events == POLLIN ? options_.read_timeout : options_.write_timeout;
    auto now = Clock::now();
    auto limit = now + per_call;
    bool deadline_bound = events == POLLIN && deadline_ < limit;
    if (deadline_bound) {
      limit = deadline_;
    }
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(limit - Clock::now());
      pollfd p{fd_, events, 0};
      int rc = ::poll(&p, 1, toPollMs(left));
      if (rc > 0) {
        return true;
      }
      if (rc < 0 && errno == EINTR) {
        continue;
      }
      if (rc == 0 && events == POLLIN) {
        // A request that stops arriving, whether its whole-request deadline or one recv()'s
        // timeout ends the wait first, is answered 408.
        timed_out_ = true;
      }
      return false;
    }
  }

  void sendAll(const char* p, size_t n) const {
    while (n > 0) {
      ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
      if (w <= 0) {
        return;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }

  void sockaddrToString(bool peer, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    int rc = peer ? ::getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &len)
                  : ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    if (rc != 0) {
      return;
    }
    char text[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&addr);
      ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
      port = ntohs(a->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
      port = ntohs(a->sin6_port);
    }
    ip = text;
  }

  int fd_;
  const HttpServerOptions& options_;
  char buf_[16 * 1024];
  size_t buf_pos_ = 0;
  size_t buf_len_ = 0;
  Clock::time_point deadline_ = Clock::time_point::max();
  mutable bool timed_out_ = false;
  bool complete_ = false;
  bool close_ = false;
  mutable std::string remote_ip_;
  mutable int remote_port_ = -1;
  mutable std::string local_ip_;
  mutable int local_port_ = -1;
  bool timeout_answered_ = false;
  bool in_head_ = true;
  bool head_too_large_ = false;
  bool wrote_ = false;
  size_t unread_bytes_ = 0;  // read since the request started or the last piece of body
  size_t head_lines_ = 0;
};

// The connection the current pool thread serves; set for the duration of
// process_and_close_socket so handlers can ask whether their client is still there.
thread_local ConnectionStream* t_connection = nullptr;

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, HttpServerHooks hooks)
    : options_(std::move(options)), hooks_(std::move(hooks)) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  set_tcp_nodelay(true);
  set_keep_alive_max_count(options_.keep_alive_max_requests);
  set_keep_alive_timeout(
      std::chrono::duration_cast<std::chrono::seconds>(options_.keep_alive_timeout).count());
  set_read_timeout(options_.read_timeout);
  set_write_timeout(options_.write_timeout);
  set_payload_max_length(options_.max_body_bytes);
  set_socket_options([this](socket_t fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
    listen_fd_ = fd;
  });
  size_t min_threads = options_.min_threads;
  size_t max_threads = options_.max_threads;
  new_task_queue = [this, min_threads, max_threads] {
    return new ConnectionPool(min_threads, max_threads, [this] { return admitConnection(); });
  };
}

HttpServer::~HttpServer() {
  if (wake_fd_ >= 0) {
    ::close(wake_fd_);
  }
}

Status HttpServer::bind(int port) {
  errno = 0;
  if (!bind_to_port(options_.host, port)) {
    int err = errno;
    std::string why = err != 0 ? std::strerror(err) : "bind failed";
    if (err == EADDRINUSE || err == EACCES || err == EADDRNOTAVAIL) {
      return absl::UnavailableError(options_.host + ":" + std::to_string(port) + ": " + why);
    }
    return absl::InternalError(options_.host + ":" + std::to_string(port) + ": " + why);
  }
  port_ = port;
  // The library listened with a backlog of 5; listen() again on a listening socket only
  // changes the backlog.
  if (listen_fd_ >= 0) {
    ::listen(listen_fd_, options_.listen_backlog);
  }
  return absl::OkStatus();
}

bool HttpServer::serve() { return listen_after_bind(); }

void HttpServer::drain() {
  draining_.store(true);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t rc = ::write(wake_fd_, &one, sizeof(one));
}

void HttpServer::markRequestComplete() {
  if (t_connection != nullptr) {
    t_connection->markComplete();
  }
}

void HttpServer::closeAfterResponse() {
  if (t_connection != nullptr) {
    t_connection->markClose();
  }
}

void HttpServer::markHeadRead() {
  if (t_connection != nullptr) {
    t_connection->markHeadRead();
  }
}

void HttpServer::markBodyProgress() {
  if (t_connection != nullptr) {
    t_connection->markBodyProgress();
  }
}

bool HttpServer::currentRequestTimedOut() {
  return t_connection != nullptr && t_connection->timedOut();
}

bool HttpServer::admitConnection() {
  size_t open = open_connections_.load();
  while (open < options_.max_connections) {
    if (open_connections_.compare_exchange_weak(open, open + 1)) {
      return true;
    }
  }
  return false;
}

bool HttpServer::currentClientGone() {
  if (t_connection == nullptr) {
    return false;
  }
  int fd = t_connection->socket();
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) {
    return false;
  }
  if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) {
    return true;
  }
  // Readable: either the next pipelined request (alive) or EOF (gone).
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0;
}

bool HttpServer::process_and_close_socket(socket_t fd) {
  if (t_refuse_connection) {
    // Over max_connections, on the accepting thread: nothing is read, and the answer fits an
    // empty socket buffer, so neither can block the accept loop.
    [[maybe_unused]] ssize_t rc =
        ::send(fd, kTooManyConnectionsResponse.data(), kTooManyConnectionsResponse.size(),
               MSG_NOSIGNAL | MSG_DONTWAIT);
    ::close(fd);
    if (hooks_.on_connection_refused) {
      hooks_.on_connection_refused();
    }
    return false;
  }
  int yes = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));

  ConnectionStream stream(fd, options_);
  t_connection = &stream;
  size_t left = options_.keep_alive_max_requests;
  bool ok = true;
  bool first = true;
  while (left > 0 && !draining_.load()) {
    // Wait for the next request, or for drain() to close this idle connection. A new connection
    // gets request_read_timeout for its first byte, not the keep-alive time: connections that
    // never send anything must not hold threads for long.
    if (!stream.hasBufferedData()) {
      pollfd p[2] = {{fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      const auto wait = first ? std::min(options_.keep_alive_timeout, options_.request_read_timeout)
                              : options_.keep_alive_timeout;
      int rc = ::poll(p, 2, toPollMs(wait));
      if (rc < 0 && errno == EINTR) {
        continue;
      }
      if (rc <= 0 || (p[0].revents & POLLIN) == 0) {
        break;  // keep-alive timeout, drain, or a broken socket
      }
    }
    stream.startRequest();
    bool close_after = left == 1 || draining_.load();
    bool closed_by_client = false;
    // The whole-request deadline stays armed through the handler: nothing reads the socket
    // there, and the next startRequest() re-arms it.
    ok = process_request(stream, close_after, closed_by_client, {});
    if (stream.headTooLarge()) {
      if (stream.answerHeadTooLargeIfNeeded() && hooks_.on_head_too_large) {
        hooks_.on_head_too_large();
      }
      break;
    }
    if (stream.timedOut()) {
      stream.answerTimeoutIfNeeded();
      if (hooks_.on_slow_request) {
        hooks_.on_slow_request();
      }
      break;
    }
    // RFC 9112: after a request the server could not frame (a malformed request line or
    // header, a bad chunk, a body over the limit, Content-Length with Transfer-Encoding) the
    // connection closes: the bytes that follow might be a body read as the next request, which
    // is how requests are smuggled past a proxy.
    if (!ok || closed_by_client || close_after || !stream.complete() || stream.closeRequested()) {
      break;
    }
    first = false;
    --left;
  }
  t_connection = nullptr;
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
  --open_connections_;
  return ok;
}

}  // namespace serve
