// Application metrics that add up across processes. Each agent and worker keeps its own figures
// (no locks, no shared files); every second it reports those that changed to the master, which
// serves the cluster-wide sum on its metrics listener. A scrape never depends on which worker
// answered, and a process that dies keeps its counts in the totals.
//
//   auto& orders = ctx.metrics().counter("shop_orders_total", "Orders taken.", {{"kind", "web"}});
//   orders.inc();
//   auto& latency = ctx.metrics().histogram("shop_checkout_seconds", "Checkout time.");
//   latency.observe(0.042);
//
// Single-threaded like the rest of a clutch process. Names follow Prometheus rules
// ([a-zA-Z_:][a-zA-Z0-9_:]*; label names [a-zA-Z_][a-zA-Z0-9_]*); the `clutch_` prefix is the
// runtime's. A figure reaches the master up to one second after it changed; a process killed
// outright loses that last second.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clutch {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// How the master merges one gauge across processes (counters and histograms always add up).
enum class GaugeMerge {
  kSum,         // e.g. open connections, items in local caches
  kMax,         // e.g. the newest config version any process has loaded
  kMin,         // e.g. the oldest
  kPerProcess,  // one series per process, labelled role and slot
};

class Counter {
 public:
  // Throws std::invalid_argument for a negative or non-finite amount: counters only go up.
  void inc(double amount = 1);
  double value() const { return value_; }

 private:
  friend class Metrics;
  double value_ = 0;
};

class Gauge {
 public:
  void set(double value) { value_ = value; }
  void inc(double amount = 1) { value_ += amount; }
  void dec(double amount = 1) { value_ -= amount; }
  double value() const { return value_; }

 private:
  friend class Metrics;
  double value_ = 0;
};

class Histogram {
 public:
  void observe(double value);
  // Upper bounds (the implicit +Inf bucket is last in counts()).
  const std::vector<double>& bounds() const { return bounds_; }
  // Observations per bucket, not cumulative; one more entry than bounds().
  const std::vector<uint64_t>& counts() const { return counts_; }
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  friend class Metrics;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Prometheus's default buckets, in seconds: 5 ms to 10 s.
std::vector<double> default_buckets();

namespace detail {
struct MetricsAccess;
}

// One per process (Context::metrics()). The same name and labels give the same object back, so
// a handler may look a metric up on each call; keeping the reference is cheaper. References stay
// valid for the life of the process. A name registered twice with a different type, help-less
// mismatch aside, throws std::invalid_argument, as do bad names and labels.
class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  Counter& counter(std::string_view name, std::string_view help, const MetricLabels& labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, const MetricLabels& labels = {},
               GaugeMerge merge = GaugeMerge::kSum);
  // `buckets`: strictly increasing upper bounds; empty for default_buckets().
  Histogram& histogram(std::string_view name, std::string_view help,
                       std::vector<double> buckets = {}, const MetricLabels& labels = {});

 private:
  friend struct detail::MetricsAccess;
  struct Family;
  Family& family(std::string_view name, std::string_view help, std::string_view type, bool runtime);
  template <typename T>
  T& series(Family& family, const MetricLabels& labels);
  Gauge& gauge(std::string_view name, std::string_view help, const MetricLabels& labels,
               GaugeMerge merge, bool runtime);
  Histogram& histogram(std::string_view name, std::string_view help, std::vector<double> buckets,
                       const MetricLabels& labels, bool runtime);
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
};

}  // namespace clutch
