// The cluster-wide view of the metrics each child reports (clutch::Metrics snapshots): counters
// and histograms add up across processes, and a process that dies leaves its counts behind in
// the totals, so a cluster-wide counter never goes down on a restart; gauges merge by their own
// rule. Pure: the master feeds it reports and renders it on a scrape.
#pragma once

#include <sys/types.h>

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "master/prometheus_text.hpp"

namespace clutch::master {

class MetricsAggregate {
 public:
  // The latest report of a process (replaces its previous one). False, with `error` set, for a
  // report that is not a metrics snapshot; the previous one is kept.
  bool update(pid_t pid, std::string role, std::string slot, std::string_view json,
              std::string& error);
  // The process is gone: its counters and histograms stay in the totals, its gauges leave.
  void retire(pid_t pid);
  // Every family, merged, in name order.
  void render(PrometheusText& out);
  // The sum of every series of a counter family in one process's last report (0 if none).
  double process_total(pid_t pid, std::string_view family) const;
  // A histogram family's per-bucket counts (not cumulative, +Inf last) in one process's last
  // report, summed over its series; empty if it has none. `bounds` gets the family's bounds.
  std::vector<double> process_histogram(pid_t pid, std::string_view family,
                                        std::vector<double>& bounds) const;
  // Families whose reports disagree on type or buckets (only the first kind seen is served).
  const std::set<std::string>& conflicts() const { return conflicts_; }

 private:
  using Labels = std::vector<std::pair<std::string, std::string>>;
  struct Series {
    Labels labels;
    double value = 0;            // counter or gauge
    std::vector<double> counts;  // histogram, per bucket (not cumulative)
    double sum = 0;
  };
  struct Family {
    std::string help, type, merge;
    std::vector<double> bounds;
    std::map<std::string, Series> series;  // by canonical label key
  };
  struct Report {
    std::string role, slot;
    std::map<std::string, Family> families;
  };
  // Adds `from` into `into` (counters and histograms).
  void accumulate(std::map<std::string, Family>& into, const std::map<std::string, Family>& from);
  bool compatible(const Family& a, const Family& b, const std::string& name);

  std::map<pid_t, Report> live_;
  std::map<std::string, Family> retired_;
  std::set<std::string> conflicts_;
};

}  // namespace clutch::master
