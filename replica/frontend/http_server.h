#pragma once

// An httplib::Server with the socket behaviour a replica behind HAProxy needs, set on purpose
// rather than inherited from cpp-httplib 0.11.4's defaults:
//   - TCP_NODELAY on every accepted connection. With Nagle on, a small response waits for the
//     peer's delayed ACK and keep-alive traffic collapses to tens of requests per second.
//   - Keep-alive connections are not closed after a fixed request count (the library default is
//     5, which halves throughput behind a proxy that reuses connections), and stay open longer
//     than the upstream proxy's keep-alive so the proxy, not the replica, closes idle ones.
//   - A listen backlog sized for bursts (the library listens with 5).
//   - SO_REUSEADDR but not SO_REUSEPORT: the library sets SO_REUSEPORT, which would let two
//     replicas bind the same port and split its traffic.
//   - Connections are served by an elastic thread pool, so a health check never waits for a
//     thread while every inference slot is busy.
//   - Every request must arrive whole within `request_read_timeout`, answered 408 otherwise: the
//     library's read timeout is per recv(), so a client dribbling a byte at a time ("slowloris")
//     would otherwise hold a thread forever.
//   - A request the library answers without reaching a handler (it could not frame it), or
//     whose handler asks for it, closes its connection after the answer (RFC 9112), so bytes
//     after a malformed request are never read as the next one.
//   - A request's head (request line and headers) may take at most 64 KiB and 128 lines, and a
//     chunked body at most 64 KiB of framing between two pieces of data; past that the read
//     fails (400) and the connection closes. The library itself buffers any line whole and
//     keeps any number of headers, which would let one request grow without bound until its
//     deadline.
//   - At most `max_connections` connections are open at once (served, or waiting for a
//     thread). One more is answered 503 and closed on the accepting thread without a byte
//     read from it.
//   - A new connection must send its first request within `request_read_timeout`; idle ones
//     between requests may wait the keep-alive time.
//   - drain(): responses from then on carry `Connection: close` and idle keep-alive connections
//     are closed at once, so shutdown does not wait out keep-alive timeouts.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace serve {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  size_t min_threads = 8;
  size_t max_threads = 512;
  size_t keep_alive_max_requests = 1'000'000'000;  // effectively unlimited
  std::chrono::milliseconds keep_alive_timeout{95'000};
  std::chrono::milliseconds read_timeout{5'000};           // one recv()
  std::chrono::milliseconds request_read_timeout{10'000};  // a whole request
  std::chrono::milliseconds write_timeout{10'000};
  size_t max_body_bytes = 16 * 1024 * 1024;
  size_t max_connections = 1024;
  int listen_backlog = 4096;
};

// Called for events the library itself does not report (for metrics).
struct HttpServerHooks {
  std::function<void()> on_slow_request;  // a request did not arrive in time (answered 408)
  // a request line passed the head's bounds; the server answered 400 itself (the library
  // answers an oversized header, through the error handler)
  std::function<void()> on_head_too_large;
  std::function<void()> on_connection_refused;  // a connection over max_connections (503)
};

class HttpServer : public httplib::Server {
 public:
  explicit HttpServer(HttpServerOptions options, HttpServerHooks hooks = {});
  ~HttpServer() override;

  // Binds exactly `port` on options.host. Unavailable with errno text when the port is taken.
  Status bind(int port);
  int port() const { return port_; }

  // Accepts connections until stop(); blocks the calling thread.
  bool serve();

  // Stops keep-alive: later responses close their connection and idle connections close now.
  void drain();

  // True when the client of the connection that the calling handler thread serves has closed
  // its side (or the connection is broken). Only meaningful inside a request handler.
  static bool currentClientGone();

  // Called by the handler once it has the whole request (body included). A connection whose
  // request was answered without this (the library answered a request it could not frame) is
  // closed after the answer: whatever follows on it cannot be trusted to be a request.
  static void markRequestComplete();
  // Called by the handler when it starts (the request's head is read), and as it takes each
  // piece of the body: the bounds on what the library buffers apply to the bytes in between.
  static void markHeadRead();
  static void markBodyProgress();
  // Whether the current request missed its whole-request deadline: the server answers it 408
  // (and counts it), whatever the handler writes.
  static bool currentRequestTimedOut();
  // The connection closes after the current response (the handler refused the request's
  // framing, or stopped reading its body).
  static void closeAfterResponse();

  // The number of open client connections, those waiting for a thread included.
  size_t openConnections() const { return open_connections_.load(); }

 private:
  bool process_and_close_socket(socket_t sock) override;
  // Counts a new connection in, unless max_connections are open.
  bool admitConnection();

  HttpServerOptions options_;
  HttpServerHooks hooks_;
  int listen_fd_ = -1;
  int port_ = 0;
  int wake_fd_ = -1;  // eventfd: readable once drain() ran; wakes idle keep-alive waits
  std::atomic<bool> draining_{false};
  std::atomic<size_t> open_connections_{0};
};

}  // namespace serve
