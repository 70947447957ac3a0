#include "replica/frontend/grpc_server.h"

#include <arpa/inet.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace serve {
namespace {

// grpc++ reports a failed bind only as a null server. A plain bind() with the same options
// first tells "in use" (worth trying the next port) from "cannot work here" (bad address), and
// yields the errno text for the message. The port is released again at once; should another
// process take it in between, grpc++'s own bind fails and the port counts as in use.
Status probeBind(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &result); rc != 0) {
    return absl::InvalidArgumentError("cannot resolve '" + host + "': " + ::gai_strerror(rc));
  }
  Status status = absl::OkStatus();
  int fd = ::socket(result->ai_family, result->ai_socktype, result->ai_protocol);
  if (fd < 0) {
    status = absl::InternalError(std::string("socket(): ") + std::strerror(errno));
  } else {
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, result->ai_addr, result->ai_addrlen) != 0) {
      int err = errno;
      std::string text = host + ":" + service + ": " + std::strerror(err);
      status = err == EADDRINUSE || err == EACCES ? absl::UnavailableError(text)
                                                  : absl::InvalidArgumentError(text);
    }
    ::close(fd);
  }
  ::freeaddrinfo(result);
  return status;
}

std::string listenAddress(const std::string& host, int port) {
  // IPv6 literals need brackets in a gRPC target.
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// The transport's memory quota beyond two messages per thread: connection and stream buffers.
constexpr std::size_t kTransportBaseBytes = 64 * 1024 * 1024;

}  // namespace

GrpcServer::GrpcServer(GrpcServerOptions options, grpc::Service& service)
    : options_(std::move(options)), service_(service) {}

GrpcServer::~GrpcServer() { shutdown(); }

Status GrpcServer::bind(int port) {
  if (Status st = probeBind(options_.host, port); !st.ok()) {
    return st;
  }
  // A process-wide switch read when a server is built: it must be on before BuildAndStart.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int selected = 0;
  builder.AddListeningPort(listenAddress(options_.host, port), grpc::InsecureServerCredentials(),
                           &selected);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  // Without a thread limit the synchronous server starts a thread for every concurrent call,
  // each holding a message of up to max_message_bytes: memory grows with the callers. The
  // memory quota bounds what the transport buffers for calls not yet handled.
  grpc::ResourceQuota quota("serve-replica-grpc");
  quota.SetMaxThreads(options_.max_threads);
  quota.Resize(kTransportBaseBytes + static_cast<std::size_t>(options_.max_threads) * 2 *
                                         static_cast<std::size_t>(options_.max_message_bytes));
  builder.SetResourceQuota(quota);
  builder.RegisterService(&service_);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || selected == 0) {
    return absl::UnavailableError(listenAddress(options_.host, port) +
                                  ": grpc++ could not bind the port");
  }
  server_ = std::move(server);
  port_ = selected;
  return absl::OkStatus();
}

void GrpcServer::setServing(bool serving) {
  if (server_ == nullptr) {
    return;
  }
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(serving);
  }
}

void GrpcServer::shutdown() {
  std::lock_guard lock(shutdown_mu_);
  if (server_ == nullptr || shut_down_) {
    return;
  }
  shut_down_ = true;
  server_->Shutdown();  // no deadline: every in-flight call finishes, as on the HTTP side
  server_->Wait();
}

}  // namespace serve
