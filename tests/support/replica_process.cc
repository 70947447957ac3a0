#include "tests/support/replica_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace serve::testing {

TempDir::TempDir() {
  char tmpl[] = "/tmp/serve-test-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& text) const {
  std::string p = path_ + "/" + name;
  std::ofstream(p) << text;
  return p;
}

int freeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

ReplicaProcess::ReplicaProcess(ReplicaOptions options) : options_(std::move(options)) {}

bool ReplicaProcess::start(std::chrono::milliseconds timeout) {
  std::string config = dir_.write("serve.yaml", options_.config_yaml);
  std::vector<std::string> args = {
      SERVE_REPLICA_BINARY, "--config",           config, "--app", options_.app,
      "--log-dir",          dir_.path() + "/logs"};
  if (options_.pass_http_port) {
    args.push_back("--http-port");
    args.push_back(std::to_string(freeLoopbackPort()));
  }
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  args.insert(args.begin(), options_.command_prefix.begin(), options_.command_prefix.end());

  std::map<std::string, std::string> env = {{"PATH", "/usr/bin:/bin"},
                                            {"RAY_SERVE_LOG_TO_STDERR", "1"}};
  // The loader's search path is inherited: on a machine whose CUDA or other shared libraries
  // live outside the default directories, the replica needs the same path as the test.
  if (const char* ld = std::getenv("LD_LIBRARY_PATH"); ld != nullptr) {
    env["LD_LIBRARY_PATH"] = ld;
  }
  for (const auto& [k, v] : options_.env) {
    env[k] = v;
  }
  if (!child_.spawn(args, env)) {
    return false;
  }
  std::optional<std::string> ready = child_.waitForReady(timeout);
  if (!ready) {
    return false;
  }
  ready_line_ = *ready;
  nlohmann::json line = nlohmann::json::parse(*ready);
  port_ = line["http_port"].get<int>();
  grpc_port_ = line["grpc_port"].is_number() ? line["grpc_port"].get<int>() : 0;
  return true;
}

std::string ReplicaProcess::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void ReplicaProcess::signal(int sig) { child_.signal(sig); }

std::optional<int> ReplicaProcess::wait(std::chrono::milliseconds timeout) {
  return child_.wait(timeout);
}

}  // namespace serve::testing
