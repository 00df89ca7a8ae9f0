#include "master/metrics_aggregate.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>

namespace clutch::master {
namespace {

std::string key_of(const std::vector<std::pair<std::string, std::string>>& labels) {
  std::string key;
  for (const auto& [k, v] : labels) key.append(k).append(1, '\x1f').append(v).append(1, '\x1e');
  return key;
}

}  // namespace

bool MetricsAggregate::update(pid_t pid, std::string role, std::string slot, std::string_view json,
                              std::string& error) {
  Report report{std::move(role), std::move(slot), {}};
  try {
    auto doc = nlohmann::json::parse(json);
    for (const auto& f : doc.at("f")) {
      Family family;
      family.help = f.at("h").get<std::string>();
      family.type = f.at("t").get<std::string>();
      if (family.type != "counter" && family.type != "gauge" && family.type != "histogram")
        throw std::runtime_error("unknown metric type " + family.type);
      family.merge = f.value("m", "sum");
      if (family.type == "histogram") family.bounds = f.at("b").get<std::vector<double>>();
      for (const auto& s : f.at("s")) {
        Series series;
        for (const auto& [k, v] : s.at("l").items()) series.labels.emplace_back(k, v);
        std::sort(series.labels.begin(), series.labels.end());
        if (family.type == "histogram") {
          series.counts = s.at("c").get<std::vector<double>>();
          series.sum = s.at("sum").get<double>();
          if (series.counts.size() != family.bounds.size() + 1)
            throw std::runtime_error("histogram counts do not match its buckets");
        } else {
          series.value = s.at("v").get<double>();
        }
        family.series.emplace(key_of(series.labels), std::move(series));
      }
      report.families.emplace(f.at("n").get<std::string>(), std::move(family));
    }
  } catch (const std::exception& e) {
    error = e.what();
    return false;
  }
  live_[pid] = std::move(report);
  return true;
}

void MetricsAggregate::retire(pid_t pid) {
  auto it = live_.find(pid);
  if (it == live_.end()) return;
  accumulate(retired_, it->second.families);
  live_.erase(it);
}

bool MetricsAggregate::compatible(const Family& a, const Family& b, const std::string& name) {
  if (a.type == b.type && a.bounds == b.bounds && (a.type != "gauge" || a.merge == b.merge))
    return true;
  conflicts_.insert(name);
  return false;
}

void MetricsAggregate::accumulate(std::map<std::string, Family>& into,
                                  const std::map<std::string, Family>& from) {
  for (const auto& [name, family] : from) {
    if (family.type == "gauge") continue;  // a gauge is a live reading: it leaves with its process
    auto [it, fresh] = into.try_emplace(name);
    Family& target = it->second;
    if (fresh) {
      target = family;
      continue;
    }
    if (!compatible(target, family, name)) continue;
    for (const auto& [key, s] : family.series) {
      auto [sit, new_series] = target.series.try_emplace(key, s);
      if (new_series) continue;
      sit->second.value += s.value;
      sit->second.sum += s.sum;
      for (std::size_t i = 0; i < s.counts.size(); ++i) sit->second.counts[i] += s.counts[i];
    }
  }
}

void MetricsAggregate::render(PrometheusText& out) {
  // Counters and histograms: the dead processes' totals plus every live one's.
  std::map<std::string, Family> merged = retired_;
  for (const auto& [pid, report] : live_) accumulate(merged, report.families);
  // Gauges: live only, by their merge rule.
  for (const auto& [pid, report] : live_) {
    for (const auto& [name, family] : report.families) {
      if (family.type != "gauge") continue;
      auto [it, fresh] = merged.try_emplace(name);
      Family& target = it->second;
      if (fresh) {
        target.help = family.help;
        target.type = family.type;
        target.merge = family.merge;
      } else if (!compatible(target, family, name)) {
        continue;
      }
      for (const auto& [key, s] : family.series) {
        if (family.merge == "process") {
          Series own = s;
          own.labels.emplace_back("role", report.role);
          own.labels.emplace_back("slot", report.slot);
          std::sort(own.labels.begin(), own.labels.end());
          target.series.emplace(key_of(own.labels), std::move(own));
          continue;
        }
        auto [sit, new_series] = target.series.try_emplace(key, s);
        if (new_series) continue;
        double& v = sit->second.value;
        if (family.merge == "max")
          v = std::max(v, s.value);
        else if (family.merge == "min")
          v = std::min(v, s.value);
        else
          v += s.value;
      }
    }
  }
  for (const auto& [name, family] : merged) {
    out.family(name, family.type, family.help);
    for (const auto& [key, s] : family.series) {
      if (family.type != "histogram") {
        out.sample(name, s.value, s.labels);
        continue;
      }
      double cumulative = 0;
      for (std::size_t i = 0; i < s.counts.size(); ++i) {
        cumulative += s.counts[i];
        auto labels = s.labels;
        labels.emplace_back("le", i < family.bounds.size() ? fmt::format("{}", family.bounds[i])
                                                           : std::string("+Inf"));
        out.sample(name + "_bucket", cumulative, labels);
      }
      out.sample(name + "_sum", s.sum, s.labels);
      out.sample(name + "_count", cumulative, s.labels);
    }
  }
}

double MetricsAggregate::process_total(pid_t pid, std::string_view family) const {
  auto it = live_.find(pid);
  if (it == live_.end()) return 0;
  auto f = it->second.families.find(std::string(family));
  if (f == it->second.families.end()) return 0;
  double total = 0;
  for (const auto& [key, s] : f->second.series) total += s.value;
  return total;
}

std::vector<double> MetricsAggregate::process_histogram(pid_t pid, std::string_view family,
                                                        std::vector<double>& bounds) const {
  std::vector<double> counts;
  auto it = live_.find(pid);
  if (it == live_.end()) return counts;
  auto f = it->second.families.find(std::string(family));
  if (f == it->second.families.end() || f->second.type != "histogram") return counts;
  bounds = f->second.bounds;
  for (const auto& [key, s] : f->second.series) {
    if (counts.size() < s.counts.size()) counts.resize(s.counts.size(), 0);
    for (std::size_t i = 0; i < s.counts.size(); ++i) counts[i] += s.counts[i];
  }
  return counts;
}

}  // namespace clutch::master
