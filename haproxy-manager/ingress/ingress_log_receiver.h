#pragma once

// IngressLogReceiver binds the unix datagram socket that HAProxy's `http` frontend logs every
// request to (GlobalSettings::ingress_log_socket) and feeds each datagram through
// parseIngressLog into IngressMetrics, on a thread of its own.
//
// HAProxy sends with MSG_DONTWAIT and never waits for us: a datagram that does not fit in the
// socket's queue is dropped by HAProxy and counted in its `show info` DroppedLogs
// (haproxy_process_dropped_logs_total on :9101/metrics). On Linux the queue of a unix datagram
// socket holds at most net.unix.max_dgram_qlen datagrams (per network namespace; the kernel's
// default is 10, systemd sets 512) and, beyond that, what the sender's SO_SNDBUF allows; the
// receiver's SO_RCVBUF plays no part (measured on 6.x: 11 datagrams queued with qlen 10, 278
// with qlen 4096, whether SO_RCVBUF was 8 KiB or 8 MiB), so it is left alone. Under bursts
// that outrun this thread, metrics miss requests; requests themselves are never slowed. Busy
// nodes should raise net.unix.max_dgram_qlen.
//
// Not thread-safe: one owner calls start() and stop().
#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "common/status.h"
#include "haproxy-manager/ingress/ingress_metrics.h"

namespace serve::manager {

class IngressLogReceiver {
 public:
  // Binds nothing yet. `metrics` must outlive the receiver.
  IngressLogReceiver(std::string socket_path, IngressMetrics& metrics);
  ~IngressLogReceiver();  // stop()
  IngressLogReceiver(const IngressLogReceiver&) = delete;
  IngressLogReceiver& operator=(const IngressLogReceiver&) = delete;

  // Removes a stale socket file left by a previous manager, binds the path with mode 0600
  // (HAProxy runs as our user) and starts the reader thread. FailedPrecondition when the path
  // is not a socket or another process still receives on it; InvalidArgument when it does not
  // fit a unix socket address (107 bytes); the errno text otherwise.
  Status start();

  // Stops the thread, closes the socket and removes its file. Idempotent.
  void stop();

  const std::string& socketPath() const { return path_; }
  // Datagrams read so far, parsed or not (for tests and logs).
  std::uint64_t datagrams() const { return datagrams_.load(std::memory_order_relaxed); }

 private:
  void run();  // the reader thread
  void handle(std::string_view datagram);

  std::string path_;
  IngressMetrics& metrics_;
  int fd_ = -1;       // the bound datagram socket; owned
  int wake_fd_ = -1;  // eventfd that stop() signals to end the thread; owned
  std::thread thread_;
  std::atomic<std::uint64_t> datagrams_{0};
  bool warned_ = false;  // reader thread only: the first unparseable line is logged
};

}  // namespace serve::manager
