#include "common/metrics.h"

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace serve::metrics {
namespace {

// Misuse aborts the process by design, so death is checked in a forked child. There the
// default SIGABRT action replaces doctest's crash handler (which would report a failed test
// from the child) and stderr is silenced so the expected "broken invariant" lines don't clutter
// the output. The child leaves with _exit so it never runs doctest's summary.
bool aborts(const std::function<void()>& fn) {
  std::fflush(nullptr);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::signal(SIGABRT, SIG_DFL);
    if (std::freopen("/dev/null", "w", stderr) == nullptr) {
      _exit(2);
    }
    fn();
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

TEST_CASE("serialize renders counters, gauges and histograms in exposition format 0.0.4") {
  Registry registry;
  auto& requests = registry.counter("http_requests_total", "Requests handled.", {"method", "code"});
  // Inserted out of order: output must be sorted by label values, not by first use.
  requests.with({"POST", "500"}).inc(1.5);
  requests.with({"GET", "200"}).inc();
  requests.with({"GET", "200"}).inc(2);

  registry.gauge("queue_depth", "Requests waiting.").with().set(7);

  auto& latency =
      registry.histogram("request_latency_ms", "Request latency.", {"model"}, {0.5, 1, 2.5, 1000});
  Histogram& h = latency.with({"resnet"});
  h.observe(0.25);  // below the first bound
  h.observe(1);     // exactly on a bound: le is "less or equal", so it counts in le="1"
  h.observe(2);     // between bounds
  h.observe(2000);  // above every bound: only +Inf

  CHECK(registry.serialize() ==
        "# HELP http_requests_total Requests handled.\n"
        "# TYPE http_requests_total counter\n"
        "http_requests_total{method=\"GET\",code=\"200\"} 3\n"
        "http_requests_total{method=\"POST\",code=\"500\"} 1.5\n"
        "# HELP queue_depth Requests waiting.\n"
        "# TYPE queue_depth gauge\n"
        "queue_depth 7\n"
        "# HELP request_latency_ms Request latency.\n"
        "# TYPE request_latency_ms histogram\n"
        "request_latency_ms_bucket{model=\"resnet\",le=\"0.5\"} 1\n"
        "request_latency_ms_bucket{model=\"resnet\",le=\"1\"} 2\n"
        "request_latency_ms_bucket{model=\"resnet\",le=\"2.5\"} 3\n"
        "request_latency_ms_bucket{model=\"resnet\",le=\"1000\"} 3\n"
        "request_latency_ms_bucket{model=\"resnet\",le=\"+Inf\"} 4\n"
        "request_latency_ms_sum{model=\"resnet\"} 2003.25\n"
        "request_latency_ms_count{model=\"resnet\"} 4\n");
}

TEST_CASE("label-less families render a zero sample at once, labelled ones render only headers") {
  Registry registry;
  registry.counter("restarts_total", "Restarts.");
  registry.gauge("in_flight", "In flight.", {"model"});
  registry.histogram("wait_ms", "Wait.", {}, {1, 10});

  CHECK(registry.serialize() ==
        "# HELP restarts_total Restarts.\n"
        "# TYPE restarts_total counter\n"
        "restarts_total 0\n"
        "# HELP in_flight In flight.\n"
        "# TYPE in_flight gauge\n"
        "# HELP wait_ms Wait.\n"
        "# TYPE wait_ms histogram\n"
        "wait_ms_bucket{le=\"1\"} 0\n"
        "wait_ms_bucket{le=\"10\"} 0\n"
        "wait_ms_bucket{le=\"+Inf\"} 0\n"
        "wait_ms_sum 0\n"
        "wait_ms_count 0\n");
}

TEST_CASE("label values escape backslash, double quote and newline, help escapes \\ and newline") {
  Registry registry;
  auto& family = registry.counter("odd_total", "Says \"odd\" with a \\ and a\nnewline.", {"v"});
  family.with({"back\\slash"}).inc();
  family.with({"say \"hi\""}).inc();
  family.with({"two\nlines"}).inc();

  CHECK(registry.serialize() ==
        "# HELP odd_total Says \"odd\" with a \\\\ and a\\nnewline.\n"
        "# TYPE odd_total counter\n"
        "odd_total{v=\"back\\\\slash\"} 1\n"
        "odd_total{v=\"say \\\"hi\\\"\"} 1\n"
        "odd_total{v=\"two\\nlines\"} 1\n");
}

TEST_CASE("sample values print as integers when integral and round-trip otherwise") {
  struct Case {
    const char* name;
    double value;
    const char* text;
  };
  const std::vector<Case> cases = {
      {"zero", 0.0, "0"},
      {"negative zero", -0.0, "0"},
      {"integer", 3.0, "3"},
      {"negative integer", -42.0, "-42"},
      {"large integer", 1e15, "1000000000000000"},
      {"2^53", 9007199254740992.0, "9007199254740992"},
      {"fraction", 0.5, "0.5"},
      {"small", 0.001, "0.001"},
      {"needs 17 digits", 0.1 + 0.2, "0.30000000000000004"},
      {"+Inf", std::numeric_limits<double>::infinity(), "+Inf"},
      {"-Inf", -std::numeric_limits<double>::infinity(), "-Inf"},
      {"NaN", std::numeric_limits<double>::quiet_NaN(), "NaN"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    Registry registry;
    registry.gauge("g", "G.").with().set(c.value);
    CHECK(registry.serialize() == std::string("# HELP g G.\n# TYPE g gauge\ng ") + c.text + "\n");
  }
}

TEST_CASE("counters ignore negative and NaN increments") {
  Counter counter;
  counter.inc();
  counter.inc(2.5);
  counter.inc(-10);
  counter.inc(std::numeric_limits<double>::quiet_NaN());
  CHECK(counter.value() == 3.5);
}

TEST_CASE("gauges set, increase and decrease") {
  Gauge gauge;
  gauge.set(10);
  gauge.inc();
  gauge.dec(4);
  gauge.inc(0.5);
  CHECK(gauge.value() == 7.5);
  gauge.dec(20);
  CHECK(gauge.value() == -12.5);
}

TEST_CASE("concurrent increments through concurrently looked-up children are all counted") {
  Registry registry;
  auto& family = registry.counter("hits_total", "Hits.", {"shard"});
  constexpr int kThreads = 8;
  constexpr int kIncrements = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&family, t] {
      // Everyone shares one child; each thread also creates its own, racing on the map.
      Counter& shared = family.with({"shared"});
      Counter& own = family.with({"own" + std::to_string(t)});
      for (int i = 0; i < kIncrements; ++i) {
        shared.inc();
        own.inc();
      }
    });
  }
  // Rendering while the writers run must be safe (values are whatever they are at that point).
  std::string during = registry.serialize();
  CHECK(during.rfind("# HELP hits_total Hits.\n# TYPE hits_total counter\n", 0) == 0);
  for (std::thread& thread : threads) {
    thread.join();
  }

  CHECK(family.with({"shared"}).value() == kThreads * kIncrements);
  for (int t = 0; t < kThreads; ++t) {
    CAPTURE(t);
    CHECK(family.with({"own" + std::to_string(t)}).value() == kIncrements);
  }
  CHECK(registry.serialize().find("hits_total{shard=\"shared\"} 80000\n") != std::string::npos);
}

TEST_CASE("concurrent observations keep count, sum and buckets consistent") {
  Histogram histogram({1, 2});
  constexpr int kThreads = 8;
  constexpr int kObservations = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&histogram] {
      for (int i = 0; i < kObservations; ++i) {
        histogram.observe(i % 2 == 0 ? 0.5 : 1.5);  // exact in binary: the sum is exact too
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  const uint64_t total = kThreads * kObservations;
  CHECK(histogram.count() == total);
  CHECK(histogram.sum() == total);  // half 0.5, half 1.5: mean 1
  CHECK(histogram.cumulativeCounts() == std::vector<uint64_t>{total / 2, total, total});
}

TEST_CASE("histogram buckets: a value on a bound counts in that bound, NaN goes to +Inf") {
  Histogram histogram({1, 5, 10});
  CHECK(histogram.cumulativeCounts() == std::vector<uint64_t>{0, 0, 0, 0});
  histogram.observe(-3);  // negatives fall in the first bucket
  histogram.observe(1);
  histogram.observe(1.0000001);
  histogram.observe(10);
  histogram.observe(10.5);
  CHECK(histogram.count() == 5);
  CHECK(histogram.sum() == doctest::Approx(-3 + 1 + 1.0000001 + 10 + 10.5));
  CHECK(histogram.cumulativeCounts() == std::vector<uint64_t>{2, 3, 4, 5});

  histogram.observe(std::numeric_limits<double>::quiet_NaN());
  CHECK(histogram.count() == 6);
  CHECK(histogram.cumulativeCounts() == std::vector<uint64_t>{2, 3, 4, 6});
}

TEST_CASE("histogram bounds: an explicit trailing +Inf is the implied one") {
  Histogram histogram({1, 2, std::numeric_limits<double>::infinity()});
  CHECK(histogram.bounds() == std::vector<double>{1, 2});
  CHECK(histogram.cumulativeCounts().size() == 3);

  Registry registry;
  auto& a = registry.histogram("h", "H.", {}, {1, 2});
  auto& b = registry.histogram("h", "H.", {}, {1, 2, std::numeric_limits<double>::infinity()});
  CHECK(&a == &b);
}

TEST_CASE("registering a name again returns the same family when it matches") {
  Registry registry;
  auto& first = registry.counter("jobs_total", "Jobs.", {"kind"});
  auto& again = registry.counter("jobs_total", "Other help is ignored.", {"kind"});
  CHECK(&first == &again);
  first.with({"a"}).inc();
  CHECK(&first.with({"a"}) == &again.with({"a"}));
  CHECK(registry.serialize() ==
        "# HELP jobs_total Jobs.\n"
        "# TYPE jobs_total counter\n"
        "jobs_total{kind=\"a\"} 1\n");
}

TEST_CASE("misuse is a broken invariant and aborts") {
  struct Case {
    const char* name;
    std::function<void()> misuse;
  };
  const std::vector<Case> cases = {
      {"metric name starts with a digit", [] { Registry().counter("1abc_total", "x"); }},
      {"metric name with a dash", [] { Registry().gauge("a-b", "x"); }},
      {"empty metric name", [] { Registry().gauge("", "x"); }},
      {"label name with a colon", [] { Registry().gauge("g", "x", {"a:b"}); }},
      {"reserved label name", [] { Registry().gauge("g", "x", {"__name"}); }},
      {"duplicate label names",
       [] {
         Registry().gauge("g", "x", {"a", "a"});
       }},
      {"histogram with an le label", [] { Registry().histogram("h", "x", {"le"}, {1}); }},
      {"unsorted bounds",
       [] {
         Registry().histogram("h", "x", {}, {2, 1});
       }},
      {"duplicate bounds",
       [] {
         Registry().histogram("h", "x", {}, {1, 1});
       }},
      {"NaN bound", [] { Histogram({std::numeric_limits<double>::quiet_NaN()}); }},
      {"same name, other type",
       [] {
         Registry r;
         r.counter("m", "x");
         r.gauge("m", "x");
       }},
      {"same name, other labels",
       [] {
         Registry r;
         r.counter("m", "x", {"a"});
         r.counter("m", "x", {"b"});
       }},
      {"same name, other buckets",
       [] {
         Registry r;
         r.histogram("m", "x", {}, {1, 2});
         r.histogram("m", "x", {}, {1, 3});
       }},
      {"too few label values",
       [] {
         Registry r;
         r.counter("m", "x", {"a", "b"}).with({"only one"});
       }},
      {"label values on a label-less family",
       [] {
         Registry r;
         r.counter("m", "x").with({"unexpected"});
       }},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    CHECK(aborts(c.misuse));
  }
  // The harness itself must not report every function as aborting.
  CHECK_FALSE(aborts([] { Registry().counter("fine_total", "x", {"ok_label"}); }));
}

TEST_CASE("bucket helpers") {
  CHECK(exponentialBuckets(1, 2, 4) == std::vector<double>{1, 2, 4, 8});
  CHECK(exponentialBuckets(0.5, 10, 3) == std::vector<double>{0.5, 5, 50});

  const std::vector<double> latency = latencyBucketsMs();
  CHECK(latency == std::vector<double>{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500,
                                       1000, 2500, 5000, 10000, 30000, 60000});
  // Usable as-is: a registration with them must not trip the bounds check.
  Registry registry;
  CHECK(registry.histogram("lat_ms", "L.", {}, latency).with().bounds() == latency);
}

}  // namespace
}  // namespace serve::metrics
