// What a histogram saw lately, from the cumulative counts a child reports once a second: the
// difference between its latest report and one taken between one and two windows earlier. So
// `clutchctl status` shows the queue time of the last 10-20 s, not an average over the
// process's life, in which a minute of overload an hour ago would still weigh. Pure.
#pragma once

#include <chrono>
#include <optional>
#include <vector>

namespace clutch::master {

class RecentHistogram {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RecentHistogram(Clock::duration window) : window_(window) {}

  // A report's bucket bounds and per-bucket counts (not cumulative; the last is +Inf), at `now`.
  void report(Clock::time_point now, std::vector<double> bounds, std::vector<double> counts);

  // The upper bound of the bucket that holds the `q` quantile (0..1) of what was observed since
  // the base: "at most this". +infinity for the +Inf bucket; nullopt when nothing was observed.
  std::optional<double> quantile(double q) const;

 private:
  Clock::duration window_;
  std::vector<double> bounds_, base_, next_base_, latest_;
  Clock::time_point next_base_at_{};
  bool started_ = false;
};

}  // namespace clutch::master
