#include "replica/runtime/python/worker.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/names.h"

extern char** environ;

namespace serve::python {
namespace {

constexpr std::size_t kMaxHeaderBytes = 16 << 20;
constexpr std::size_t kMaxInlineBytes = std::size_t{1} << 31;

Status errnoError(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

bool writeAll(int fd, const char* data, std::size_t len) {
  while (len > 0) {
    ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

bool readAll(int fd, char* data, std::size_t len) {
  while (len > 0) {
    ssize_t n = ::read(fd, data, len);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

void putU32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
}

std::uint32_t getU32(const unsigned char* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

bool writeFrame(int fd, const Frame& frame) {
  const std::string header = frame.header.dump();
  std::string prefix;
  putU32(prefix, static_cast<std::uint32_t>(header.size()));
  putU32(prefix, static_cast<std::uint32_t>(frame.inline_bytes.size()));
  return writeAll(fd, prefix.data(), prefix.size()) && writeAll(fd, header.data(), header.size()) &&
         writeAll(fd, frame.inline_bytes.data(), frame.inline_bytes.size());
}

// A frame, or an error naming what was wrong with it; "closed" for a clean end of stream.
StatusOr<Frame> readFrame(int fd) {
  unsigned char prefix[8];
  if (!readAll(fd, reinterpret_cast<char*>(prefix), sizeof prefix)) {
    return absl::UnavailableError("closed");
  }
  const std::uint32_t header_len = getU32(prefix);
  const std::uint32_t inline_len = getU32(prefix + 4);
  if (header_len > kMaxHeaderBytes || inline_len > kMaxInlineBytes) {
    return absl::InternalError(absl::StrCat("frame of ", header_len, "+", inline_len,
                                            " bytes is over the protocol's limits"));
  }
  std::string header(header_len, '\0');
  Frame frame;
  frame.inline_bytes.resize(inline_len);
  if (!readAll(fd, header.data(), header.size()) ||
      !readAll(fd, frame.inline_bytes.data(), frame.inline_bytes.size())) {
    return absl::UnavailableError("closed");
  }
  frame.header = nlohmann::json::parse(header, nullptr, false);
  if (!frame.header.is_object() || !frame.header.contains("op") ||
      !frame.header["op"].is_string()) {
    return absl::InternalError("a frame whose header is not a JSON object with an \"op\"");
  }
  return frame;
}

bool isFinalReply(const std::string& op) {
  return op == "http_response" || op == "http_end" || op == "infer_response" || op == "infer_end" ||
         op == "done" || op == "error";
}

std::string describeWaitStatus(int status) {
  if (WIFEXITED(status)) {
    return absl::StrCat("exited with status ", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return absl::StrCat("was killed by signal ", WTERMSIG(status), " (",
                        strsignal(WTERMSIG(status)), ")");
  }
  return "ended";
}

// Lines the worker's user code prints, into the replica's log.
void pumpLines(int fd, pid_t pid, bool is_stderr) {
  std::string pending;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    pending.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(pending.data() + start, nl - start);
      if (is_stderr) {
        spdlog::warn("python worker {} stderr: {}", pid, escapeForLog(line));
      } else {
        spdlog::info("python worker {} stdout: {}", pid, escapeForLog(line));
      }
    }
    pending.erase(0, start);
  }
  if (!pending.empty()) {
    spdlog::info("python worker {} {}: {}", pid, is_stderr ? "stderr" : "stdout",
                 escapeForLog(pending));
  }
  ::close(fd);
}

}  // namespace

StatusOr<std::unique_ptr<Worker>> Worker::start(const WorkerOptions& options,
                                                const nlohmann::json& init) {
  std::unique_ptr<Worker> w(new Worker());
  StatusOr<std::unique_ptr<Arena>> arena = Arena::create(options.arena_bytes);
  if (!arena.ok()) {
    return arena.status();
  }
  w->arena_ = std::move(*arena);

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return errnoError("socketpair");
  }
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return errnoError("pipe2");
  }
  // The child's ends above fd 10, so that the dup2s to 3 and 4 below cannot overwrite each other.
  const int child_control = ::fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
  const int child_arena = ::fcntl(w->arena_->fd(), F_DUPFD_CLOEXEC, 10);
  ::close(sv[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawn_file_actions_adddup2(&actions, child_control, 3);
  posix_spawn_file_actions_adddup2(&actions, child_arena, 4);
  if (!options.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(&actions, options.working_dir.c_str());
  }

  std::vector<std::string> env_strings;
  std::string python_path = absl::StrJoin(options.python_path, ":");
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (entry.starts_with("PYTHONPATH=")) {
      // The package and working_dir first, then what the replica's environment had.
      if (entry.size() > 11) {
        python_path += (python_path.empty() ? "" : ":") + std::string(entry.substr(11));
      }
      continue;
    }
    env_strings.emplace_back(entry);
  }
  env_strings.push_back("PYTHONPATH=" + python_path);
  env_strings.push_back("PYTHONUNBUFFERED=1");
  std::vector<char*> envp;
  for (std::string& s : env_strings) {
    envp.push_back(s.data());
  }
  envp.push_back(nullptr);
  std::vector<std::string> args = {
      options.python, "-m", "haproxy_serve.worker", "--control-fd", "3", "--arena-fd", "4"};
  std::vector<char*> argv;
  for (std::string& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);

  pid_t pid = -1;
  const int rc =
      ::posix_spawnp(&pid, options.python.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(child_control);
  ::close(child_arena);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(sv[0]);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return absl::FailedPreconditionError(absl::StrCat("cannot start the Python interpreter '",
                                                      options.python, "': ", std::strerror(rc)));
  }
  w->pid_ = pid;
  w->spawned_pid_ = pid;
  w->control_fd_ = sv[0];
  w->log_threads_.emplace_back(pumpLines, out_pipe[0], pid, false);
  w->log_threads_.emplace_back(pumpLines, err_pipe[0], pid, true);

  if (!writeFrame(w->control_fd_, Frame{init, {}})) {
    w->reap();
    return absl::FailedPreconditionError(
        absl::StrCat("the Python worker ", w->exitDescription(), " before it read its init"));
  }
  StatusOr<Frame> first = readFrame(w->control_fd_);
  if (!first.ok()) {
    w->reap();
    return absl::FailedPreconditionError(
        absl::StrCat("the Python worker ", w->exitDescription(),
                     " before it answered init (see its stderr above)"));
  }
  const std::string op = first->header.value("op", "");
  if (op == "init_error") {
    w->reap();
    return absl::FailedPreconditionError(
        first->header.value("last_line", first->header.value("message", "init failed")));
  }
  if (op != "ready") {
    w->reap();
    return absl::InternalError(absl::StrCat("the Python worker answered init with '", op, "'"));
  }
  w->ready_ = std::move(first->header);
  w->reader_ = std::thread([raw = w.get()] { raw->readLoop(); });
  return w;
}

Worker::~Worker() {
  if (alive()) {
    send(Frame{{{"op", "shutdown"}}, {}}).IgnoreError();  // a dead worker needs no shutdown
  }
  // The worker exits after shutdown (and on a closed channel); give it 5 s, then kill it.
  {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(5), [&] { return closed_; }) && pid_ > 0) {
      ::kill(pid_, SIGKILL);
    }
  }
  if (reader_.joinable()) {
    reader_.join();
  }
  for (std::thread& t : log_threads_) {
    t.join();
  }
  if (control_fd_ >= 0) {
    ::close(control_fd_);
  }
}

void Worker::reap() {
  pid_t pid = -1;
  {
    std::lock_guard lock(mu_);
    pid = pid_;
  }
  int status = 0;
  const bool reaped = pid > 0 && ::waitpid(pid, &status, 0) == pid;
  std::lock_guard lock(mu_);
  if (reaped) {
    wait_status_ = status;
  }
  pid_ = -1;
  closed_ = true;
  closed_reason_ = absl::StrCat(
      "the Python worker ",
      wait_status_ < 0 ? std::string("stopped answering") : describeWaitStatus(wait_status_),
      " while handling this request");
  cv_.notify_all();
}

bool Worker::alive() const {
  std::lock_guard lock(mu_);
  return !closed_;
}

std::string Worker::exitDescription() const {
  std::lock_guard lock(mu_);
  return wait_status_ < 0 ? std::string("stopped answering") : describeWaitStatus(wait_status_);
}

void Worker::submit(Frame frame, PartialHandler on_partial, FinalHandler on_final) {
  auto pending = std::make_shared<Pending>(Pending{std::move(on_partial), std::move(on_final)});
  std::uint64_t id = 0;
  {
    std::lock_guard lock(mu_);
    if (closed_) {
      pending->on_final(absl::UnavailableError(closed_reason_));
      return;
    }
    id = next_id_++;
    frame.header["id"] = id;
    pending_[id] = pending;
  }
  // Not under mu_: a write can block until the worker reads, and the worker may first need the
  // reader thread (which takes mu_) to take its replies. A failed write means the channel is
  // going away: the reader then fails everything still pending, this one included.
  std::lock_guard write_lock(write_mu_);
  writeFrame(control_fd_, frame);
}

StatusOr<Frame> Worker::request(Frame frame) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<StatusOr<Frame>> result;
  submit(std::move(frame), {}, [&](StatusOr<Frame> reply) {
    std::lock_guard lock(mu);
    result = std::move(reply);
    cv.notify_all();
  });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return result.has_value(); });
  return std::move(*result);
}

Status Worker::send(const Frame& frame) {
  std::lock_guard lock(write_mu_);
  if (!writeFrame(control_fd_, frame)) {
    return absl::UnavailableError("the Python worker's channel is closed");
  }
  return absl::OkStatus();
}

void Worker::readLoop() {
  while (true) {
    StatusOr<Frame> frame = readFrame(control_fd_);
    if (!frame.ok()) {
      if (frame.status().message() != "closed") {
        spdlog::error("python worker {}: protocol error: {}", spawned_pid_,
                      std::string(frame.status().message()));
        std::lock_guard lock(mu_);
        if (pid_ > 0) {
          ::kill(pid_, SIGKILL);
        }
      }
      break;
    }
    const std::string op = frame->header["op"];
    const std::uint64_t id = frame->header.value("id", std::uint64_t{0});
    std::shared_ptr<Pending> pending;
    {
      std::lock_guard lock(mu_);
      auto it = pending_.find(id);
      if (it != pending_.end()) {
        pending = it->second;
        if (isFinalReply(op)) {
          pending_.erase(it);
        }
      }
    }
    if (pending == nullptr) {
      spdlog::warn("python worker {}: '{}' for no pending request (id {})", spawned_pid_, op, id);
    } else if (isFinalReply(op)) {
      pending->on_final(std::move(*frame));
    } else if (pending->on_partial) {
      pending->on_partial(*frame);
    }
  }
  reap();
  std::map<std::uint64_t, std::shared_ptr<Pending>> orphans;
  std::string why;
  {
    std::lock_guard lock(mu_);
    orphans.swap(pending_);
    why = closed_reason_;
  }
  for (auto& [id, pending] : orphans) {
    pending->on_final(absl::UnavailableError(why));
  }
}

}  // namespace serve::python
