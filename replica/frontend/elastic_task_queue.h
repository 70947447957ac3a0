#pragma once

// A thread pool for cpp-httplib that grows when every thread is busy and shrinks when threads
// sit idle. cpp-httplib serves a connection on one pool thread for the connection's whole life
// (keep-alive included), so a fixed pool of N threads stops accepting the N+1th connection: a
// health check would wait behind long inference requests. Growing on demand keeps health
// probes and inference from starving each other; `max_threads` bounds the damage of a flood.
#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace serve {

class ElasticTaskQueue : public httplib::TaskQueue {
 public:
  ElasticTaskQueue(size_t min_threads, size_t max_threads,
                   std::chrono::milliseconds idle_retire = std::chrono::seconds(30));
  ~ElasticTaskQueue() override;

  void enqueue(std::function<void()> fn) override;
  // Runs what is queued, then joins every thread. Called by httplib::Server when it stops.
  void shutdown() override;

  size_t threadCount() const;

 private:
  void workerLoop();
  void spawnLocked();
  void reapLocked();

  const size_t min_threads_;
  const size_t max_threads_;
  const std::chrono::milliseconds idle_retire_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::map<std::thread::id, std::thread> threads_;
  std::vector<std::thread> finished_;  // retired threads, joined on the next enqueue
  size_t idle_ = 0;
  bool stopping_ = false;
};

}  // namespace serve
