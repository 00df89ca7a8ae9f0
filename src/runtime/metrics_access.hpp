// The runtime's side of clutch::Metrics: its own figures under the reserved `clutch_` prefix,
// and the report a process sends the master.
#pragma once

#include <string>

#include "clutch/metrics.hpp"

namespace clutch::detail {

struct MetricsAccess {
  static Counter& counter(Metrics& m, std::string_view name, std::string_view help,
                          const MetricLabels& labels = {});
  static Gauge& gauge(Metrics& m, std::string_view name, std::string_view help,
                      const MetricLabels& labels = {}, GaugeMerge merge = GaugeMerge::kSum);
  static Histogram& histogram(Metrics& m, std::string_view name, std::string_view help,
                              std::vector<double> buckets = {}, const MetricLabels& labels = {});
  // Every family and series as JSON (the format MetricsAggregate reads):
  // {"f":[{"n":NAME,"h":HELP,"t":"counter|gauge|histogram","m":"sum|max|min|process",
  //        "b":[BOUNDS],"s":[{"l":{LABELS},"v":VALUE} or {"l":{..},"c":[COUNTS],"sum":S}]}]}
  static std::string snapshot(const Metrics& m);
};

}  // namespace clutch::detail
