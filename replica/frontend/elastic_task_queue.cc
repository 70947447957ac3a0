#include "replica/frontend/elastic_task_queue.h"

namespace serve {

ElasticTaskQueue::ElasticTaskQueue(size_t min_threads, size_t max_threads,
                                   std::chrono::milliseconds idle_retire)
    : min_threads_(std::max<size_t>(1, min_threads)),
      max_threads_(std::max(max_threads, std::max<size_t>(1, min_threads))),
      idle_retire_(idle_retire) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < min_threads_; ++i) {
    spawnLocked();
  }
}

ElasticTaskQueue::~ElasticTaskQueue() { shutdown(); }

void ElasticTaskQueue::spawnLocked() {
  std::thread t([this] { workerLoop(); });
  std::thread::id id = t.get_id();
  threads_.emplace(id, std::move(t));
}

void ElasticTaskQueue::reapLocked() {
  for (std::thread& t : finished_) {
    t.join();  // already returned from workerLoop: joins at once
  }
  finished_.clear();
}

void ElasticTaskQueue::enqueue(std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    reapLocked();
    tasks_.push_back(std::move(fn));
    // Grow only when no thread is free to take this task; idle_ counts waiting threads that
    // have not yet been handed a task.
    if (idle_ < tasks_.size() && threads_.size() < max_threads_) {
      spawnLocked();
    }
  }
  cv_.notify_one();
}

void ElasticTaskQueue::shutdown() {
  std::map<std::thread::id, std::thread> threads;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && threads_.empty()) {
      return;
    }
    stopping_ = true;
  }
  cv_.notify_all();
  // Threads leave threads_ only by retiring, which cannot happen while stopping_ is set, so
  // waiting for the map to drain is done by joining what it holds now.
  std::unique_lock lock(mu_);
  threads.swap(threads_);
  lock.unlock();
  for (auto& [id, t] : threads) {
    t.join();
  }
  lock.lock();
  reapLocked();
}

size_t ElasticTaskQueue::threadCount() const {
  std::lock_guard lock(mu_);
  return threads_.size();
}

void ElasticTaskQueue::workerLoop() {
  std::unique_lock lock(mu_);
  while (true) {
    ++idle_;
    bool woke = cv_.wait_for(lock, idle_retire_, [this] { return stopping_ || !tasks_.empty(); });
    --idle_;
    if (!woke) {
      // Idle for idle_retire_: retire if the pool is above its floor.
      if (threads_.size() > min_threads_ && !stopping_) {
        auto it = threads_.find(std::this_thread::get_id());
        finished_.push_back(std::move(it->second));
        threads_.erase(it);
        return;
      }
      continue;
    }
    if (tasks_.empty()) {
      return;  // stopping and nothing left to run
    }
    std::function<void()> task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

}  // namespace serve
