#include "tests/support/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace serve::testing {

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (reader_.joinable()) {
    reader_.join();  // the pipe closes when the child (and its children) are gone
  }
}

bool ChildProcess::spawn(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env) {
  std::vector<std::string> args = argv;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) {
    env_strings.push_back(k + "=" + v);
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return false;
  }
  pid_ = ::fork();
  if (pid_ < 0) {
    return false;
  }
  if (pid_ == 0) {
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    std::vector<char*> cargv;
    std::vector<char*> cenv;
    for (auto& a : args) {
      cargv.push_back(a.data());
    }
    cargv.push_back(nullptr);
    for (auto& e : env_strings) {
      cenv.push_back(e.data());
    }
    cenv.push_back(nullptr);
    ::execve(cargv[0], cargv.data(), cenv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  reader_ = std::thread([this, fd = fds[0]] { readLoop(fd); });
  return true;
}

void ChildProcess::readLoop(int fd) {
  char buf[8192];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    std::lock_guard<std::mutex> lock(mu_);
    output_.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  std::lock_guard<std::mutex> lock(mu_);
  eof_ = true;
  eof_cv_.notify_all();
}

std::optional<std::string> ChildProcess::waitForReady(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    const std::string out = output();
    std::size_t pos = 0;
    while (true) {
      const std::size_t nl = out.find('\n', pos);
      if (nl == std::string::npos) {
        break;
      }
      const std::string line = out.substr(pos, nl - pos);
      pos = nl + 1;
      if (line.starts_with("{\"event\":\"ready\"")) {
        return line;
      }
    }
    if (wait(std::chrono::milliseconds(0))) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

void ChildProcess::signal(int sig) {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, sig);
  }
}

std::optional<int> ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (exit_code_ || pid_ <= 0) {
    return exit_code_;
  }
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      // What it wrote last may still be in the pipe: give the reader a moment to reach the end
      // (not forever: a process it started may hold the pipe open).
      std::unique_lock<std::mutex> lock(mu_);
      eof_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return eof_; });
      return exit_code_;
    }
    if (std::chrono::steady_clock::now() >= until) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string ChildProcess::output() const {
  std::lock_guard<std::mutex> lock(mu_);
  return output_;
}

}  // namespace serve::testing
