#pragma once

// One Python worker process and the control channel to it (docs/python.md): spawns
// `python3 -m haproxy_serve.worker` with the control socket as fd 3 and the arena as fd 4, logs
// what user code prints, and matches replies to requests by id. Thread-safe: any number of
// threads may call request() at once; one reader thread takes the replies.
#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "replica/runtime/python/arena.h"

namespace serve::python {

struct WorkerOptions {
  std::string python = "python3";        // the interpreter
  std::vector<std::string> python_path;  // PYTHONPATH entries, first wins
  std::string working_dir;               // the worker's cwd ("" = the replica's)
  std::size_t arena_bytes = 64 << 20;
};

// A frame as it travels: the JSON header and the inline bytes after it.
struct Frame {
  nlohmann::json header;
  std::string inline_bytes;
};

// Called on the reader thread. A partial frame belongs to an id but is not its final reply
// (http_start, http_chunk); the final reply (http_end, http_response, infer_response, done, error)
// ends the request, or an Unavailable status when the worker died first.
using PartialHandler = std::function<void(Frame&)>;
using FinalHandler = std::function<void(StatusOr<Frame>)>;

class Worker {
 public:
  // Starts the process and sends `init`; returns once the worker answered `ready`. An
  // `init_error` (import, construct or reconfigure failed) or an exit before it is an error whose
  // message is the Python error's last line.
  static StatusOr<std::unique_ptr<Worker>> start(const WorkerOptions& options,
                                                 const nlohmann::json& init);
  ~Worker();  // sends `shutdown`, waits up to 5 s, then kills

  const nlohmann::json& ready() const { return ready_; }
  Arena& arena() { return *arena_; }

  // Sends `frame` (its header gets a fresh "id"); the handlers run on the reader thread (or on
  // this one, when the channel is already closed). Exactly one call of on_final per submit.
  void submit(Frame frame, PartialHandler on_partial, FinalHandler on_final);

  // submit() and wait for the final reply.
  StatusOr<Frame> request(Frame frame);

  // Sends a frame that has no answer (release).
  Status send(const Frame& frame);

  // True while the process runs and the channel is open.
  bool alive() const;
  pid_t pid() const { return spawned_pid_; }
  // How the process ended ("exited with status 1", "was killed by signal 9"), once it has.
  std::string exitDescription() const;

 private:
  Worker() = default;
  void readLoop();
  void reap();  // waits for the process; marks the channel closed and wakes every waiter
  std::unique_ptr<Arena> arena_;
  int control_fd_ = -1;
  pid_t spawned_pid_ = -1;  // for messages; pid_ below is the live one
  nlohmann::json ready_;
  std::thread reader_;
  std::vector<std::thread> log_threads_;

  std::mutex write_mu_;    // one frame at a time on control_fd_
  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::uint64_t next_id_ = 1;
  struct Pending {
    PartialHandler on_partial;
    FinalHandler on_final;
  };
  std::map<std::uint64_t, std::shared_ptr<Pending>> pending_;
  bool closed_ = false;
  std::string closed_reason_;
  pid_t pid_ = -1;        // -1 once reaped
  int wait_status_ = -1;  // from waitpid, once reaped
};

}  // namespace serve::python
