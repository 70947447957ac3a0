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

ReplicaProcess::~ReplicaProcess() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (out_fd_ >= 0) {
    ::close(out_fd_);
  }
}

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

  std::vector<std::string> env_strings = {"PATH=/usr/bin:/bin", "RAY_SERVE_LOG_TO_STDERR=1"};
  for (const auto& [k, v] : options_.env) {
    env_strings.push_back(k + "=" + v);
  }

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return false;
  }
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(pipe_fds[1], 1);
    ::dup2(pipe_fds[1], 2);
    std::vector<char*> argv, envp;
    for (auto& a : args) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    for (auto& e : env_strings) {
      envp.push_back(e.data());
    }
    envp.push_back(nullptr);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  out_fd_ = pipe_fds[0];
  ::fcntl(out_fd_, F_SETFL, O_NONBLOCK);

  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    drainOutput(std::chrono::milliseconds(20));
    size_t pos = 0;
    while (pos < output_.size()) {
      size_t nl = output_.find('\n', pos);
      if (nl == std::string::npos) {
        break;
      }
      std::string line = output_.substr(pos, nl - pos);
      pos = nl + 1;
      if (line.starts_with("{\"event\":\"ready\"")) {
        ready_line_ = line;
        port_ = nlohmann::json::parse(line)["http_port"].get<int>();
        return true;
      }
    }
    if (wait(std::chrono::milliseconds(0))) {
      return false;
    }
  }
  return false;
}

std::string ReplicaProcess::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void ReplicaProcess::signal(int sig) {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, sig);
  }
}

std::optional<int> ReplicaProcess::wait(std::chrono::milliseconds timeout) {
  if (exit_code_) {
    return exit_code_;
  }
  auto until = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      drainOutput(std::chrono::milliseconds(0));
      return exit_code_;
    }
    if (std::chrono::steady_clock::now() >= until) {
      return std::nullopt;
    }
    drainOutput(std::chrono::milliseconds(10));
  }
}

std::string ReplicaProcess::output() {
  drainOutput(std::chrono::milliseconds(0));
  return output_;
}

void ReplicaProcess::drainOutput(std::chrono::milliseconds timeout) {
  if (out_fd_ < 0) {
    return;
  }
  pollfd p{out_fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
    return;
  }
  char buf[8192];
  while (true) {
    ssize_t n = ::read(out_fd_, buf, sizeof(buf));
    if (n <= 0) {
      return;
    }
    output_.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace serve::testing
