#pragma once

// A small Prometheus client: counters, gauges and histograms with labels, rendered in the
// text exposition format (version 0.0.4). prometheus-cpp is not packaged in Debian 12, so this
// is the part of it we need. Updating a metric is lock-free (atomics) once the child for a
// label set has been looked up; callers on hot paths keep the child reference.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace serve::metrics {

class Counter {
 public:
  // Negative and NaN amounts are ignored: a counter that went down would read as a process
  // restart to Prometheus' rate().
  void inc(double v = 1.0);
  double value() const;

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void set(double v);
  void inc(double v = 1.0);
  void dec(double v = 1.0);
  double value() const;

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  // Bounds strictly ascending and finite (aborts otherwise); +Inf is implied, and an explicit
  // trailing +Inf is dropped. A value equal to a bound counts in that bound's bucket (le).
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  // Snapshot for rendering and tests: cumulative counts per bound (last = +Inf), sum, count.
  std::vector<uint64_t> cumulativeCounts() const;
  double sum() const;
  uint64_t count() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // non-cumulative, size bounds_+1
  std::atomic<double> sum_{0.0};
  std::atomic<uint64_t> count_{0};
};

enum class Type { kCounter, kGauge, kHistogram };

// One metric name with a fixed list of label names; children are created on first use of a
// label-value tuple and live as long as the registry (references stay valid).
template <typename M>
class Family {
 public:
  // values.size() must equal the family's label count (checked, aborts otherwise).
  M& with(const std::vector<std::string>& values);
  M& with() { return with({}); }

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds)
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        bounds_(std::move(bounds)) {}

  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::vector<double> bounds_;  // histograms only
  mutable std::mutex mu_;       // guards children_
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_;
};

// Family<M>::with is defined in metrics.cc and instantiated there for the three metric kinds, so
// the header stays free of the child-construction details.
extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

class Registry {
 public:
  // Both out of line: Entry is only complete in metrics.cc.
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Family<Counter>& counter(const std::string& name, const std::string& help,
                           std::vector<std::string> label_names = {});
  Family<Gauge>& gauge(const std::string& name, const std::string& help,
                       std::vector<std::string> label_names = {});
  Family<Histogram>& histogram(const std::string& name, const std::string& help,
                               std::vector<std::string> label_names, std::vector<double> bounds);

  // The whole registry in Prometheus text format: families in registration order, children in
  // sorted label order, label values escaped (\\, \", \n).
  std::string serialize() const;

 private:
  struct Entry;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_;
};

// Bucket helpers: exponential(start, factor, count) and the latency buckets (ms) used project-wide.
std::vector<double> exponentialBuckets(double start, double factor, int count);
std::vector<double> latencyBucketsMs();

}  // namespace serve::metrics
