// Admission control, deadlines, client disconnects and batching on a live replica.
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "tests/integration/replica_fixture.h"

using namespace serve::testing;

TEST_CASE("admission: 1 ongoing + 2 queued are served, the rest get 503 with Retry-After") {
  auto r = startReplica({.kind = "sleep", .sleep_ms = 400, .max_ongoing = 1, .max_queued = 2});
  std::vector<HttpResult> results(6);
  std::vector<std::thread> threads;
  // The first three fill the slot and the queue before the others are sent.
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] { results[i] = httpPost(r->url("/echo"), inferBody(i)); });
    REQUIRE(waitForMetric(*r, series("serve_replica_ongoing_requests"), 1));
  }
  REQUIRE(waitForMetric(*r, series("serve_replica_queued_requests"), 2));
  for (int i = 3; i < 6; ++i) {
    threads.emplace_back([&, i] { results[i] = httpPost(r->url("/echo"), inferBody(i)); });
  }
  for (auto& t : threads) {
    t.join();
  }
  int ok = 0, rejected = 0;
  for (auto& res : results) {
    if (res.status == 200) {
      ++ok;
    } else if (res.status == 503) {
      ++rejected;
      CHECK(res.body == "Request dropped due to backpressure");
      CHECK(res.headers["retry-after"] == "1");
    }
  }
  CHECK(ok == 3);
  CHECK(rejected == 3);
  for (int i = 3; i < 6; ++i) {
    CHECK(results[i].status == 503);
  }
  CHECK(metric(*r, requestsSeries("/echo", "POST", 503)) == 3);
  CHECK(metric(*r, requestsSeries("/echo", "POST", 200)) == 3);
  CHECK(metric(*r, series("serve_model_requests_total")) == 3);
}

TEST_CASE("deadline: a request still queued at its deadline gets 408 and never reaches the model") {
  auto r = startReplica({.kind = "sleep", .sleep_ms = 600, .max_ongoing = 1});
  HttpResult holder;
  std::thread t([&] { holder = httpPost(r->url("/echo"), inferBody(1)); });
  REQUIRE(waitForMetric(*r, series("serve_replica_ongoing_requests"), 1));

  auto late = httpPost(r->url("/echo"), inferBody(2),
                       {{"x-request-timeout-seconds", "0.2"}, {"x-request-id", "late-1"}});
  CHECK(late.status == 408);
  CHECK(late.body == "Request late-1 timed out after 0.2s.");
  CHECK(late.seconds < 0.45);
  t.join();
  CHECK(holder.status == 200);
  CHECK(metric(*r, series("serve_model_requests_total")) == 1);
  CHECK(metric(*r, series("serve_model_forward_passes_total")) == 1);
  CHECK(metric(*r, requestsSeries("/echo", "POST", 408)) == 1);
}

TEST_CASE("deadline: a running request is answered 408 at its deadline, from the config too") {
  auto r = startReplica({.kind = "sleep", .sleep_ms = 800, .request_timeout_s = 0.25});
  auto res = httpPost(r->url("/echo"), inferBody(1), {{"x-request-id", "run-1"}});
  CHECK(res.status == 408);
  CHECK(res.body == "Request run-1 timed out after 0.25s.");
  CHECK(res.seconds < 0.6);
  // The header overrides the config's timeout.
  auto longer = httpPost(r->url("/echo"), inferBody(2), {{"x-request-timeout-seconds", "5"}});
  CHECK(longer.status == 200);
}

TEST_CASE("disconnect: a client that leaves is cancelled and counted as 499") {
  auto r = startReplica({.kind = "sleep", .sleep_ms = 700, .max_ongoing = 1});
  HttpResult holder;
  std::thread t([&] { holder = httpPost(r->url("/echo"), inferBody(1)); });
  REQUIRE(waitForMetric(*r, series("serve_replica_ongoing_requests"), 1));
  auto gone =
      httpRequest("POST", r->url("/echo"), inferBody(2), {}, std::chrono::milliseconds(150));
  CHECK(gone.status == 0);  // the client gave up
  REQUIRE(waitForMetric(*r, requestsSeries("/echo", "POST", 499), 1));
  t.join();
  CHECK(holder.status == 200);
  // The cancelled request was still queued: it never reached the model.
  CHECK(metric(*r, series("serve_model_requests_total")) == 1);
}

TEST_CASE("batching: concurrent requests share forward passes and each gets its own result") {
  auto r = startReplica(
      {.kind = "sleep", .sleep_ms = 300, .max_ongoing = 16, .max_batch = 8, .batch_wait_s = 0.05});
  HttpResult first;
  std::thread t0([&] { first = httpPost(r->url("/echo"), inferBody(100)); });
  REQUIRE(waitForMetric(*r, series("serve_replica_ongoing_requests"), 1));
  // While the first forward pass runs, eight more arrive and queue behind it.
  std::vector<HttpResult> results(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { results[i] = httpPost(r->url("/echo"), inferBody(i)); });
  }
  t0.join();
  for (auto& t : threads) {
    t.join();
  }
  CHECK(first.status == 200);
  for (int i = 0; i < 8; ++i) {
    CAPTURE(i);
    REQUIRE(results[i].status == 200);
    auto out = nlohmann::json::parse(results[i].body)["outputs"][0]["data"];
    CHECK(out == nlohmann::json::array({i}));
  }
  CHECK(metric(*r, series("serve_model_forward_passes_total")) == 2);
  CHECK(metric(*r, series("serve_model_requests_total")) == 9);
  CHECK(metric(*r, series("serve_batch_size_count")) == 2);
  CHECK(metric(*r, series("serve_batch_size_sum")) == 9);
  CHECK(metric(*r, series("serve_batch_size_bucket", "le=\"4\"")) == 1);
  CHECK(metric(*r, series("serve_batch_size_bucket", "le=\"8\"")) == 2);
}

TEST_CASE("batching: a lone request does not pay the batch wait") {
  auto r = startReplica({.kind = "noop", .max_batch = 32, .batch_wait_s = 0.5});
  for (int i = 0; i < 3; ++i) {
    auto res = httpPost(r->url("/echo"), inferBody(i));
    CHECK(res.status == 200);
    CHECK(res.seconds < 0.2);  // far below the 0.5 s batch wait
  }
  CHECK(metric(*r, series("serve_batch_wait_ms_bucket", "le=\"100\"")) == 3);
}

TEST_CASE("health: answers fast while every slot is busy and the queue is long") {
  auto r = startReplica({.kind = "sleep", .sleep_ms = 1500, .max_ongoing = 2});
  std::vector<std::thread> threads;
  for (int i = 0; i < 24; ++i) {
    threads.emplace_back([&, i] {
      httpRequest("POST", r->url("/echo"), inferBody(i), {}, std::chrono::milliseconds(1200));
    });
  }
  REQUIRE(waitForMetric(*r, series("serve_replica_queued_requests"), 22));
  std::vector<double> times;
  for (int i = 0; i < 20; ++i) {
    auto h = httpGet(r->url("/-/healthz"));
    CHECK(h.status == 200);
    CHECK(h.body == "success");
    auto ready = httpGet(r->url("/v2/health/ready"));
    CHECK(ready.status == 200);
    times.push_back(h.seconds);
  }
  std::sort(times.begin(), times.end());
  CHECK(times[times.size() / 2] < 0.010);  // median under 10 ms
  CHECK(times.back() < 0.100);
  for (auto& t : threads) {
    t.join();
  }
}

TEST_CASE("watchdog: no progress turns the replica UNHEALTHY, progress heals it") {
  auto r = startReplica({.kind = "sleep", .sleep_ms = 1500, .max_ongoing = 1},
                        {"--watchdog-timeout-s", "0.3"});
  HttpResult res;
  std::thread t([&] { res = httpPost(r->url("/echo"), inferBody(1)); });
  REQUIRE(waitForMetric(*r, series("serve_replica_ongoing_requests"), 1));
  bool unhealthy = false;
  for (int i = 0; i < 100 && !unhealthy; ++i) {
    auto h = httpGet(r->url("/-/healthz"));
    unhealthy = h.status == 503 && h.body == "UNHEALTHY";
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(unhealthy);
  CHECK(httpGet(r->url("/v2/health/ready")).status == 503);
  CHECK(metric(*r, series("serve_replica_healthy")) == 0);
  t.join();
  CHECK(res.status == 200);
  bool healed = false;
  for (int i = 0; i < 100 && !healed; ++i) {
    auto h = httpGet(r->url("/-/healthz"));
    healed = h.status == 200 && h.body == "success";
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(healed);
  CHECK(metric(*r, series("serve_replica_healthy")) == 1);
}
