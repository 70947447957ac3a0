#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <set>
#include <type_traits>
#include <variant>

namespace serve::metrics {
namespace {

// Misuse of the registry (bad names, conflicting re-registration, wrong label count) is a
// programming error, not a runtime condition: crash loudly with the reason. This deliberately
// avoids common/logging so the metrics library has no dependencies of its own.
[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "metrics: broken invariant: %s\n", what.c_str());
  std::abort();
}

// std::atomic<double>::fetch_add exists in C++20, but a CAS loop states the memory order
// explicitly and works on every standard library we build with. Relaxed is enough: each metric
// is an independent monotonic-ish value; nobody synchronizes other data through it.
void atomicAdd(std::atomic<double>& target, double delta) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + delta, std::memory_order_relaxed,
                                       std::memory_order_relaxed)) {
  }
}

bool isMetricNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

bool isMetricNameChar(char c) { return isMetricNameStart(c) || (c >= '0' && c <= '9'); }

// Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*.
void validateMetricName(const std::string& name) {
  if (name.empty() || !isMetricNameStart(name.front()) ||
      !std::all_of(name.begin(), name.end(), isMetricNameChar)) {
    fail("invalid metric name '" + name + "'");
  }
}

// Label names are the metric charset minus ':' ([a-zA-Z_][a-zA-Z0-9_]*), names starting with "__"
// are reserved for Prometheus itself, and histograms own "le". Duplicates would render a sample
// that Prometheus rejects.
void validateLabelNames(const std::string& metric, const std::vector<std::string>& labels,
                        bool histogram) {
  std::set<std::string> seen;
  for (const std::string& label : labels) {
    bool ok = !label.empty() && isMetricNameStart(label.front()) &&
              label.find(':') == std::string::npos &&
              std::all_of(label.begin(), label.end(), isMetricNameChar) &&
              label.rfind("__", 0) != 0;
    if (!ok) {
      fail("invalid label name '" + label + "' on metric '" + metric + "'");
    }
    if (histogram && label == "le") {
      fail("histogram '" + metric + "' may not use the reserved label 'le'");
    }
    if (!seen.insert(label).second) {
      fail("duplicate label name '" + label + "' on metric '" + metric + "'");
    }
  }
}

// The +Inf bucket is always implied; callers may still spell it (as other clients accept), so
// a trailing +Inf is dropped rather than rendered twice. Anything else out of order is a bug.
std::vector<double> normalizeBounds(std::vector<double> bounds) {
  if (!bounds.empty() && bounds.back() == std::numeric_limits<double>::infinity()) {
    bounds.pop_back();
  }
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) {
      fail("histogram bounds must be finite (apart from a trailing +Inf)");
    }
    if (i > 0 && !(bounds[i - 1] < bounds[i])) {
      fail("histogram bounds must be strictly ascending");
    }
  }
  return bounds;
}

// Sample values and le bounds. Integral values print as integers ("3", not "3.000000" or "3e+00")
// up to 2^53, where doubles stop being exact integers; everything else uses the shortest text
// that parses back to the same double. The special values use the spellings of the exposition
// format, which differ from what to_chars produces ("inf", "nan").
std::string formatDouble(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53
  if (v == std::trunc(v) && std::fabs(v) <= kMaxExactInteger) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, result.ptr);
}

// Label values escape backslash, double quote and newline.
std::string escapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// HELP text escapes only backslash and newline; quotes stay as they are (0.0.4 spec).
std::string escapeHelp(const std::string& help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// `{a="x",b="y"}`, with an optional trailing le pair for histogram buckets; empty when there are
// no pairs at all, so label-less samples read `name value`.
std::string renderLabels(const std::vector<std::string>& names,
                         const std::vector<std::string>& values, const std::string* le) {
  if (names.empty() && le == nullptr) {
    return "";
  }
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    out += names[i];
    out += "=\"";
    out += escapeLabelValue(values[i]);
    out += '"';
  }
  if (le != nullptr) {
    if (!names.empty()) {
      out += ',';
    }
    out += "le=\"";
    out += *le;
    out += '"';
  }
  out += '}';
  return out;
}

const char* typeName(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  fail("unknown metric type");
}

template <typename M>
constexpr Type typeOf() {
  if constexpr (std::is_same_v<M, Counter>) {
    return Type::kCounter;
  } else if constexpr (std::is_same_v<M, Gauge>) {
    return Type::kGauge;
  } else {
    static_assert(std::is_same_v<M, Histogram>);
    return Type::kHistogram;
  }
}

template <typename M>
constexpr Type typeOfFamily(const Family<M>&) {
  return typeOf<M>();
}

}  // namespace

// --- Counter -------------------------------------------------------------------------------------

// Counters only go up: Prometheus treats any decrease as a process restart and rate() would
// report a spurious spike, so negative (and NaN) increments are ignored rather than applied.
void Counter::inc(double v) {
  if (!(v >= 0.0)) {
    return;
  }
  atomicAdd(value_, v);
}

double Counter::value() const { return value_.load(std::memory_order_relaxed); }

// --- Gauge ---------------------------------------------------------------------------------------

void Gauge::set(double v) { value_.store(v, std::memory_order_relaxed); }

void Gauge::inc(double v) { atomicAdd(value_, v); }

void Gauge::dec(double v) { atomicAdd(value_, -v); }

double Gauge::value() const { return value_.load(std::memory_order_relaxed); }

// --- Histogram -----------------------------------------------------------------------------------

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(normalizeBounds(std::move(upper_bounds))),
      // make_unique<T[]> value-initializes, so every bucket starts at zero.
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::observe(double v) {
  // lower_bound finds the first bound >= v, i.e. the bucket whose `le` is the smallest bound
  // the value does not exceed; past the end is the +Inf bucket. NaN compares false with every
  // bound and would land in the first bucket, so it is sent to +Inf explicitly (as the Go client
  // does); it still poisons the sum, which is what Prometheus expects.
  size_t index = bounds_.size();
  if (!std::isnan(v)) {
    index = static_cast<size_t>(
        std::distance(bounds_.begin(), std::lower_bound(bounds_.begin(), bounds_.end(), v)));
  }
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  atomicAdd(sum_, v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::cumulativeCounts() const {
  std::vector<uint64_t> counts(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    counts[i] = running;
  }
  return counts;
}

double Histogram::sum() const { return sum_.load(std::memory_order_relaxed); }

uint64_t Histogram::count() const { return count_.load(std::memory_order_relaxed); }

// --- Family --------------------------------------------------------------------------------------

template <typename M>
M& Family<M>::with(const std::vector<std::string>& values) {
  if (values.size() != label_names_.size()) {
    fail("metric '" + name_ + "' takes " + std::to_string(label_names_.size()) +
         " label values, got " + std::to_string(values.size()));
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = children_.find(values);
  if (it == children_.end()) {
    std::unique_ptr<M> child;
    if constexpr (std::is_same_v<M, Histogram>) {
      child = std::make_unique<Histogram>(bounds_);
    } else {
      child = std::make_unique<M>();
    }
    it = children_.emplace(values, std::move(child)).first;
  }
  // Children are never erased and live behind unique_ptr, so the reference outlives the lock.
  return *it->second;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// --- Registry ------------------------------------------------------------------------------------

// One registered family; its type is the variant's alternative, so the two cannot disagree.
// As a nested class of Registry (Family's friend) it may construct families and read
// their fields, which keeps the per-type work here instead of in three copies in Registry.
struct Registry::Entry {
  std::variant<std::unique_ptr<Family<Counter>>, std::unique_ptr<Family<Gauge>>,
               std::unique_ptr<Family<Histogram>>>
      family;

  Type type() const {
    return std::visit([](const auto& f) { return typeOfFamily(*f); }, family);
  }

  const std::string& name() const {
    return std::visit([](const auto& f) -> const std::string& { return f->name_; }, family);
  }

  // Returns the family called `name`, creating it if needed. Re-registering with the same type,
  // labels and buckets is how independent modules share a metric; anything else would render
  // two incompatible series under one name. The help text of the first registration wins.
  // Caller holds Registry::mu_.
  template <typename M>
  static Family<M>& findOrAdd(std::vector<std::unique_ptr<Entry>>& entries, const std::string& name,
                              const std::string& help, std::vector<std::string> label_names,
                              std::vector<double> bounds) {
    validateMetricName(name);
    validateLabelNames(name, label_names, std::is_same_v<M, Histogram>);
    for (const auto& entry : entries) {
      if (entry->name() != name) {
        continue;
      }
      auto* existing = std::get_if<std::unique_ptr<Family<M>>>(&entry->family);
      if (existing == nullptr) {
        fail("metric '" + name + "' registered again as a " + typeName(typeOf<M>()) + ", was a " +
             typeName(entry->type()));
      }
      if ((*existing)->label_names_ != label_names || (*existing)->bounds_ != bounds) {
        fail("metric '" + name + "' registered again with different labels or buckets");
      }
      return **existing;
    }
    auto family = std::unique_ptr<Family<M>>(
        new Family<M>(name, help, std::move(label_names), std::move(bounds)));
    Family<M>& ref = *family;
    // A label-less family has exactly one series; creating it now makes it render as
    // `name 0` before the first update instead of being absent.
    if (ref.label_names_.empty()) {
      ref.with();
    }
    entries.push_back(std::make_unique<Entry>(Entry{std::move(family)}));
    return ref;
  }

  void render(std::string& out) const {
    std::visit([&](const auto& f) { renderFamily(*f, out); }, family);
  }

 private:
  template <typename M>
  void renderFamily(const Family<M>& f, std::string& out) const {
    out += "# HELP " + f.name_ + " " + escapeHelp(f.help_) + "\n";
    out += "# TYPE " + f.name_ + " " + typeName(type()) + "\n";

    // Copy the child pointers under the lock and format outside it, so rendering never blocks
    // hot-path lookups for long. Children are never erased, so the pointers stay valid.
    std::vector<std::pair<std::vector<std::string>, const M*>> children;
    {
      std::lock_guard<std::mutex> lock(f.mu_);
      children.reserve(f.children_.size());
      for (const auto& [values, child] : f.children_) {
        children.emplace_back(values, child.get());
      }
    }

    for (const auto& [values, child] : children) {
      if constexpr (std::is_same_v<M, Histogram>) {
        // _count is taken from the +Inf bucket of the same snapshot rather than from count():
        // an observe() racing with us could otherwise make the two disagree, which Prometheus
        // treats as a malformed histogram.
        std::vector<uint64_t> counts = child->cumulativeCounts();
        for (size_t i = 0; i < counts.size(); ++i) {
          std::string le = i < f.bounds_.size() ? formatDouble(f.bounds_[i]) : "+Inf";
          out += f.name_ + "_bucket" + renderLabels(f.label_names_, values, &le) + " " +
                 std::to_string(counts[i]) + "\n";
        }
        std::string labels = renderLabels(f.label_names_, values, nullptr);
        out += f.name_ + "_sum" + labels + " " + formatDouble(child->sum()) + "\n";
        out += f.name_ + "_count" + labels + " " + std::to_string(counts.back()) + "\n";
      } else {
        out += f.name_ + renderLabels(f.label_names_, values, nullptr) + " " +
               formatDouble(child->value()) + "\n";
      }
    }
  }
};

Registry::Registry() = default;
Registry::~Registry() = default;

Family<Counter>& Registry::counter(const std::string& name, const std::string& help,
                                   std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  return Entry::findOrAdd<Counter>(entries_, name, help, std::move(label_names), {});
}

Family<Gauge>& Registry::gauge(const std::string& name, const std::string& help,
                               std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  return Entry::findOrAdd<Gauge>(entries_, name, help, std::move(label_names), {});
}

Family<Histogram>& Registry::histogram(const std::string& name, const std::string& help,
                                       std::vector<std::string> label_names,
                                       std::vector<double> bounds) {
  // Normalized before the lock and before comparing, so `{1, 2}` and `{1, 2, +Inf}` are the
  // same layout.
  std::vector<double> normalized = normalizeBounds(std::move(bounds));
  std::lock_guard<std::mutex> lock(mu_);
  return Entry::findOrAdd<Histogram>(entries_, name, help, std::move(label_names),
                                     std::move(normalized));
}

std::string Registry::serialize() const {
  // Entries are only ever appended and never freed before the registry, so a pointer snapshot
  // lets registration proceed while we format.
  std::vector<const Entry*> entries;
  {
    std::lock_guard<std::mutex> lock(mu_);
    entries.reserve(entries_.size());
    for (const auto& entry : entries_) {
      entries.push_back(entry.get());
    }
  }
  std::string out;
  for (const Entry* entry : entries) {
    entry->render(out);
  }
  return out;
}

// --- Buckets -------------------------------------------------------------------------------------

std::vector<double> exponentialBuckets(double start, double factor, int count) {
  if (!(start > 0.0) || !(factor > 1.0) || count < 1) {
    fail("exponentialBuckets needs start > 0, factor > 1 and count >= 1");
  }
  std::vector<double> bounds;
  bounds.reserve(static_cast<size_t>(count));
  double bound = start;
  for (int i = 0; i < count; ++i) {
    bounds.push_back(bound);
    bound *= factor;
  }
  return bounds;
}

// A 1-2.5-5 ladder from 50 us to one minute (plus 30 s, where 25 s would add little): fine
// enough at the bottom to separate sub-millisecond fast paths, long enough at the top to see
// requests that ran into multi-second timeouts, and few enough buckets (19) that every label
// set stays cheap to store and scrape. Shared project-wide so dashboards can compare series.
std::vector<double> latencyBucketsMs() {
  return {0.05, 0.1, 0.25, 0.5,  1,    2.5,  5,     10,    25,   50,
          100,  250, 500,  1000, 2500, 5000, 10000, 30000, 60000};
}

}  // namespace serve::metrics
