#pragma once

// A grpc++ server for the replica's gRPC services, with the behaviour a replica behind HAProxy
// needs set on purpose:
//   - SO_REUSEPORT off (grpc++ turns it on by default, which would let two replicas bind the
//     same port and split its traffic), as on the HTTP side.
//   - One port, tried explicitly, so the caller can walk a port range as it does for HTTP.
//   - Message size limits from RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH, both directions.
//   - grpc.health.v1.Health from grpc++'s built-in service; setServing() follows the replica's
//     health (SERVING only while /-/healthz would answer 200).
//   - shutdown(): the listener closes (new connections are refused, new calls on existing
//     ones get UNAVAILABLE), in-flight calls finish, then it returns.
#include <grpcpp/server.h>

#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"

namespace serve {

struct GrpcServerOptions {
  std::string host = "127.0.0.1";
  int max_message_bytes = 4 * 1024 * 1024;
  // The most threads grpc++'s synchronous server runs, and so the most calls in memory at
  // once; a call beyond them is answered RESOURCE_EXHAUSTED.
  int max_threads = 512;
};

class GrpcServer {
 public:
  // `service` must outlive the server.
  GrpcServer(GrpcServerOptions options, grpc::Service& service);
  ~GrpcServer();

  // Binds exactly `port` on options.host and starts serving. Unavailable with the errno text
  // when the port is taken; another error (e.g. InvalidArgument) when no port can work.
  Status bind(int port);
  int port() const { return port_; }

  // The grpc.health.v1 status of the server and every service. Safe from any thread.
  void setServing(bool serving);

  // Closes the listener and waits for every in-flight call to finish. Idempotent.
  void shutdown();

 private:
  GrpcServerOptions options_;
  grpc::Service& service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::mutex shutdown_mu_;  // serializes shutdown() callers
  bool shut_down_ = false;  // guarded by shutdown_mu_
};

}  // namespace serve
