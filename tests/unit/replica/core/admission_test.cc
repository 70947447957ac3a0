#include "replica/core/admission.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace serve {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using Outcome = Admission::Outcome;

const char* outcomeName(Outcome o) {
  switch (o) {
    case Outcome::kAdmitted:
      return "admitted";
    case Outcome::kRejected:
      return "rejected";
    case Outcome::kTimedOut:
      return "timed_out";
    case Outcome::kCancelled:
      return "cancelled";
  }
  return "?";
}

Admission::TimePoint never() { return Admission::TimePoint::max(); }

// Polls until `pred` holds; false after 5 s. Used to learn that another thread reached a state
// (queued, admitted), never as a stand-in for ordering.
bool eventually(const std::function<bool()>& pred) {
  auto give_up = steady_clock::now() + std::chrono::seconds(5);
  while (!pred()) {
    if (steady_clock::now() > give_up) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

TEST_CASE("Admission admits up to max_ongoing at once, then queues, then rejects") {
  struct Case {
    int max_ongoing;
    int max_queued;
  };
  for (const Case& c : {Case{1, 0}, Case{2, 0}, Case{3, 0}}) {
    CAPTURE(c.max_ongoing);
    Admission a(c.max_ongoing, c.max_queued);
    CHECK(a.maxOngoing() == c.max_ongoing);
    for (int i = 0; i < c.max_ongoing; ++i) {
      CHECK(std::string(outcomeName(a.acquire(never(), {}))) == "admitted");
      CHECK(a.ongoing() == i + 1);
    }
    CHECK(std::string(outcomeName(a.acquire(never(), {}))) == "rejected");
    CHECK(a.ongoing() == c.max_ongoing);
    CHECK(a.queued() == 0);
    for (int i = c.max_ongoing; i > 0; --i) {
      a.release();
      CHECK(a.ongoing() == i - 1);
    }
  }
}

TEST_CASE("Admission(1, 2): one ongoing and two queued are allowed, the third waiter is rejected") {
  Admission a(1, 2);
  REQUIRE(a.acquire(never(), {}) == Outcome::kAdmitted);
  CHECK(a.ongoing() == 1);
  CHECK(a.queued() == 0);

  std::vector<std::future<Outcome>> waiters;
  for (int i = 0; i < 2; ++i) {
    waiters.push_back(std::async(std::launch::async, [&a] {
      Outcome o = a.acquire(never(), {});
      if (o == Outcome::kAdmitted) {
        a.release();
      }
      return o;
    }));
    REQUIRE(eventually([&] { return a.queued() == i + 1; }));
  }
  CHECK(a.ongoing() == 1);
  CHECK(a.queued() == 2);

  // The queue is full: rejected at once, even with no deadline.
  CHECK(std::string(outcomeName(a.acquire(never(), {}))) == "rejected");
  CHECK(a.queued() == 2);
  CHECK(a.ongoing() == 1);

  a.release();
  for (auto& w : waiters) {
    CHECK(std::string(outcomeName(w.get())) == "admitted");
  }
  CHECK(a.ongoing() == 0);
  CHECK(a.queued() == 0);
}

TEST_CASE("Admission hands a released slot to the oldest waiter, first come first served") {
  constexpr int kWaiters = 4;
  Admission a(1, kWaiters);
  REQUIRE(a.acquire(never(), {}) == Outcome::kAdmitted);

  std::mutex mu;
  std::vector<int> order;  // guarded by mu: who got a slot, in order
  std::vector<std::promise<void>> let_go(kWaiters);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i, done = let_go[i].get_future()]() mutable {
      if (a.acquire(never(), {}) != Outcome::kAdmitted) {
        return;
      }
      {
        std::lock_guard lock(mu);
        order.push_back(i);
      }
      done.wait();
      a.release();
    });
    // Each waiter is in the queue before the next one starts, so arrival order is i.
    REQUIRE(eventually([&] { return a.queued() == i + 1; }));
  }

  auto admittedCount = [&] {
    std::lock_guard lock(mu);
    return order.size();
  };
  a.release();  // the main thread's slot goes to waiter 0
  for (int i = 0; i < kWaiters; ++i) {
    CAPTURE(i);
    REQUIRE(eventually([&] { return admittedCount() == static_cast<size_t>(i + 1); }));
    {
      std::lock_guard lock(mu);
      CHECK(order.back() == i);
    }
    // The slot passed hands without ever being free.
    CHECK(a.ongoing() == 1);
    CHECK(a.queued() == kWaiters - 1 - i);
    let_go[i].set_value();
  }
  for (auto& t : threads) {
    t.join();
  }
  CHECK(order == std::vector<int>{0, 1, 2, 3});
  CHECK(a.ongoing() == 0);
  CHECK(a.queued() == 0);
}

TEST_CASE("Admission: a newcomer does not overtake a waiter") {
  Admission a(1, 2);
  REQUIRE(a.acquire(never(), {}) == Outcome::kAdmitted);
  std::promise<void> let_go;
  std::atomic<bool> waiter_admitted{false};
  std::thread waiter([&, done = let_go.get_future()] {
    waiter_admitted = a.acquire(never(), {}) == Outcome::kAdmitted;
    done.wait();
    if (waiter_admitted) {
      a.release();
    }
  });
  REQUIRE(eventually([&] { return a.queued() == 1; }));
  a.release();
  // The slot went to the waiter, so a newcomer with a short deadline only queues and times out.
  CHECK(a.acquire(steady_clock::now() + milliseconds(5), {}) == Outcome::kTimedOut);
  CHECK(a.ongoing() == 1);
  CHECK(eventually([&] { return waiter_admitted.load(); }));
  let_go.set_value();
  waiter.join();
  CHECK(a.ongoing() == 0);
}

TEST_CASE("Admission times out at the deadline and leaves the queue") {
  Admission a(1, 1);
  REQUIRE(a.acquire(never(), {}) == Outcome::kAdmitted);
  auto start = steady_clock::now();
  auto deadline = start + milliseconds(30);
  CHECK(std::string(outcomeName(a.acquire(deadline, {}))) == "timed_out");
  CHECK(steady_clock::now() >= deadline);
  CHECK(a.queued() == 0);
  CHECK(a.ongoing() == 1);
  // The queue has room again.
  CHECK(a.acquire(steady_clock::now(), {}) == Outcome::kTimedOut);
  a.release();
  CHECK(a.ongoing() == 0);
}

TEST_CASE("Admission times out with a cancel callback that stays false") {
  Admission a(1, 1);
  REQUIRE(a.acquire(never(), {}) == Outcome::kAdmitted);
  int polls = 0;
  auto deadline = steady_clock::now() + milliseconds(30);
  CHECK(a.acquire(
            deadline, [&] { return ++polls, false; }, milliseconds(5)) == Outcome::kTimedOut);
  CHECK(steady_clock::now() >= deadline);
  CHECK(polls >= 2);  // polled while waiting, not only once
  CHECK(a.queued() == 0);
  a.release();
}

TEST_CASE("Admission returns kCancelled when cancelled() turns true while waiting") {
  SUBCASE("already cancelled") {
    Admission a(1, 1);
    REQUIRE(a.acquire(never(), {}) == Outcome::kAdmitted);
    CHECK(std::string(outcomeName(a.acquire(never(), [] { return true; }))) == "cancelled");
    CHECK(a.queued() == 0);
    CHECK(a.ongoing() == 1);
    a.release();
  }
  SUBCASE("cancelled later, noticed at the next poll") {
    Admission a(1, 1);
    REQUIRE(a.acquire(never(), {}) == Outcome::kAdmitted);
    std::atomic<bool> gone{false};
    auto result = std::async(std::launch::async, [&] {
      return a.acquire(
          never(), [&] { return gone.load(); }, milliseconds(2));
    });
    REQUIRE(eventually([&] { return a.queued() == 1; }));
    gone = true;
    CHECK(std::string(outcomeName(result.get())) == "cancelled");
    CHECK(a.queued() == 0);
    CHECK(a.ongoing() == 1);
    a.release();
    CHECK(a.ongoing() == 0);
  }
  SUBCASE("a free slot is taken without asking cancelled()") {
    Admission a(1, 1);
    CHECK(a.acquire(never(), [] { return true; }) == Outcome::kAdmitted);
    CHECK(a.ongoing() == 1);
    a.release();
  }
}

TEST_CASE("Admission with max_queued -1 queues without limit") {
  constexpr int kWaiters = 20;
  Admission a(1, -1);
  REQUIRE(a.acquire(never(), {}) == Outcome::kAdmitted);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&] {
      if (a.acquire(never(), {}) == Outcome::kAdmitted) {
        ++admitted;
        a.release();
      }
    });
  }
  REQUIRE(eventually([&] { return a.queued() == kWaiters; }));
  CHECK(a.ongoing() == 1);
  a.release();
  for (auto& t : threads) {
    t.join();
  }
  CHECK(admitted == kWaiters);
  CHECK(a.ongoing() == 0);
  CHECK(a.queued() == 0);
}

}  // namespace
}  // namespace serve
