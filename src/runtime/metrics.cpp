// clutch::Metrics: the per-process registry behind Context::metrics(). Pure: the reporting to
// the master is the runtime's (child_main.cpp), the merging the master's (metrics_aggregate).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "runtime/metrics_access.hpp"

namespace clutch {
namespace {

constexpr std::string_view kReservedPrefix = "clutch_";

bool valid_name(std::string_view name, bool colons) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (colons && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string_view merge_name(GaugeMerge m) {
  switch (m) {
    case GaugeMerge::kSum:
      return "sum";
    case GaugeMerge::kMax:
      return "max";
    case GaugeMerge::kMin:
      return "min";
    case GaugeMerge::kPerProcess:
      return "process";
  }
  return "sum";
}

// Labels sorted by name, checked; the sorted form is the series' identity.
MetricLabels canonical(std::string_view metric, MetricLabels labels, bool histogram,
                       bool per_process) {
  std::sort(labels.begin(), labels.end());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::string& key = labels[i].first;
    std::string why;
    if (!valid_name(key, false) || key.starts_with("__"))
      why = "is not a valid label name";
    else if (i > 0 && labels[i - 1].first == key)
      why = "is given twice";
    else if (histogram && key == "le")
      why = "is reserved for histogram buckets";
    else if (per_process && (key == "role" || key == "slot"))
      why = "is added by the master to a per-process gauge";
    if (!why.empty())
      throw std::invalid_argument(fmt::format("metric {}: label '{}' {}", metric, key, why));
  }
  return labels;
}

std::string series_key(const MetricLabels& labels) {
  std::string key;
  for (const auto& [k, v] : labels) key.append(k).append(1, '\x1f').append(v).append(1, '\x1e');
  return key;
}

}  // namespace

std::vector<double> default_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

void Counter::inc(double amount) {
  if (!(amount >= 0) || std::isinf(amount))
    throw std::invalid_argument(fmt::format("a counter only goes up: inc({})", amount));
  value_ += amount;
}

void Histogram::observe(double value) {
  if (std::isnan(value)) return;  // counted nowhere: it would poison the sum
  auto at = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  ++counts_[static_cast<std::size_t>(at - bounds_.begin())];
  sum_ += value;
  ++count_;
}

struct Metrics::Family {
  std::string name, help, type;
  GaugeMerge merge = GaugeMerge::kSum;
  std::vector<double> bounds;
  struct Series {
    MetricLabels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  std::map<std::string, Series> series;
};

Metrics::Metrics() = default;
Metrics::~Metrics() = default;

Metrics::Family& Metrics::family(std::string_view name, std::string_view help,
                                 std::string_view type, bool runtime) {
  if (!valid_name(name, true))
    throw std::invalid_argument(fmt::format("'{}' is not a valid metric name", name));
  if (!runtime && name.starts_with(kReservedPrefix))
    throw std::invalid_argument(
        fmt::format("metric {}: the clutch_ prefix is reserved for the runtime", name));
  auto it = families_.find(name);
  if (it != families_.end()) {
    if (it->second->type != type)
      throw std::invalid_argument(
          fmt::format("metric {} is already a {}, not a {}", name, it->second->type, type));
    return *it->second;
  }
  auto f = std::make_unique<Family>();
  f->name = name;
  f->help = help;
  f->type = type;
  return *families_.emplace(std::string(name), std::move(f)).first->second;
}

Counter& Metrics::counter(std::string_view name, std::string_view help,
                          const MetricLabels& labels) {
  Family& f = family(name, help, "counter", false);
  return series<Counter>(f, labels);
}

Gauge& Metrics::gauge(std::string_view name, std::string_view help, const MetricLabels& labels,
                      GaugeMerge merge) {
  return gauge(name, help, labels, merge, false);
}

Histogram& Metrics::histogram(std::string_view name, std::string_view help,
                              std::vector<double> buckets, const MetricLabels& labels) {
  return histogram(name, help, std::move(buckets), labels, false);
}

template <typename T>
T& Metrics::series(Family& f, const MetricLabels& labels) {
  MetricLabels sorted = canonical(f.name, labels, f.type == "histogram",
                                  f.type == "gauge" && f.merge == GaugeMerge::kPerProcess);
  auto& s = f.series[series_key(sorted)];
  if (s.labels.empty()) s.labels = std::move(sorted);
  if constexpr (std::is_same_v<T, Counter>) {
    if (!s.counter) s.counter = std::make_unique<Counter>();
    return *s.counter;
  } else if constexpr (std::is_same_v<T, Gauge>) {
    if (!s.gauge) s.gauge = std::make_unique<Gauge>();
    return *s.gauge;
  } else {
    if (!s.histogram) {
      s.histogram = std::make_unique<Histogram>();
      s.histogram->bounds_ = f.bounds;
      s.histogram->counts_.assign(f.bounds.size() + 1, 0);
    }
    return *s.histogram;
  }
}

Gauge& Metrics::gauge(std::string_view name, std::string_view help, const MetricLabels& labels,
                      GaugeMerge merge, bool runtime) {
  bool fresh = families_.find(name) == families_.end();
  Family& f = family(name, help, "gauge", runtime);
  if (fresh) f.merge = merge;
  if (f.merge != merge)
    throw std::invalid_argument(fmt::format("metric {}: gauge merged by {} already, not by {}",
                                            name, merge_name(f.merge), merge_name(merge)));
  return series<Gauge>(f, labels);
}

Histogram& Metrics::histogram(std::string_view name, std::string_view help,
                              std::vector<double> buckets, const MetricLabels& labels,
                              bool runtime) {
  if (buckets.empty()) buckets = default_buckets();
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    if (!std::isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1]))
      throw std::invalid_argument(
          fmt::format("metric {}: buckets must be finite and strictly increasing", name));
  }
  bool fresh = families_.find(name) == families_.end();
  Family& f = family(name, help, "histogram", runtime);
  if (fresh) f.bounds = buckets;
  if (f.bounds != buckets)
    throw std::invalid_argument(
        fmt::format("metric {}: registered already with other buckets", name));
  return series<Histogram>(f, labels);
}

}  // namespace clutch

namespace clutch::detail {

Gauge& MetricsAccess::gauge(Metrics& m, std::string_view name, std::string_view help,
                            const MetricLabels& labels, GaugeMerge merge) {
  return m.gauge(name, help, labels, merge, true);
}

Histogram& MetricsAccess::histogram(Metrics& m, std::string_view name, std::string_view help,
                                    std::vector<double> buckets, const MetricLabels& labels) {
  return m.histogram(name, help, std::move(buckets), labels, true);
}

Counter& MetricsAccess::counter(Metrics& m, std::string_view name, std::string_view help,
                                const MetricLabels& labels) {
  Metrics::Family& f = m.family(name, help, "counter", true);
  return m.series<Counter>(f, labels);
}

std::string MetricsAccess::snapshot(const Metrics& m) {
  nlohmann::json families = nlohmann::json::array();
  for (const auto& [name, f] : m.families_) {
    nlohmann::json series = nlohmann::json::array();
    for (const auto& [key, s] : f->series) {
      nlohmann::json labels = nlohmann::json::object();
      for (const auto& [k, v] : s.labels) labels[k] = v;
      if (s.histogram)
        series.push_back(
            {{"l", labels}, {"c", s.histogram->counts()}, {"sum", s.histogram->sum()}});
      else
        series.push_back({{"l", labels}, {"v", s.counter ? s.counter->value() : s.gauge->value()}});
    }
    nlohmann::json family = {{"n", name}, {"h", f->help}, {"t", f->type}, {"s", series}};
    if (f->type == "gauge") family["m"] = merge_name(f->merge);
    if (f->type == "histogram") family["b"] = f->bounds;
    families.push_back(std::move(family));
  }
  return nlohmann::json{{"f", families}}.dump(-1, ' ', false,
                                              nlohmann::json::error_handler_t::replace);
}

}  // namespace clutch::detail
