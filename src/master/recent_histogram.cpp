#include "master/recent_histogram.hpp"

#include <limits>

namespace clutch::master {

void RecentHistogram::report(Clock::time_point now, std::vector<double> bounds,
                             std::vector<double> counts) {
  bounds_ = std::move(bounds);
  if (!started_) {
    // The process's life so far is the first window: a new worker's figure is its own.
    started_ = true;
    base_.assign(counts.size(), 0);
    next_base_ = counts;
    next_base_at_ = now;
  } else if (now - next_base_at_ >= window_) {
    base_ = std::move(next_base_);
    next_base_ = counts;
    next_base_at_ = now;
  }
  latest_ = std::move(counts);
}

std::optional<double> RecentHistogram::quantile(double q) const {
  std::vector<double> seen(latest_.size(), 0);
  double total = 0;
  for (std::size_t i = 0; i < latest_.size(); ++i) {
    double before = i < base_.size() ? base_[i] : 0;
    seen[i] = latest_[i] > before ? latest_[i] - before : 0;  // a reset reads as nothing
    total += seen[i];
  }
  if (total <= 0) return std::nullopt;
  double rank = q * total, cumulative = 0;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    cumulative += seen[i];
    if (cumulative >= rank && seen[i] > 0) {
      return i < bounds_.size() ? bounds_[i] : std::numeric_limits<double>::infinity();
    }
  }
  return std::numeric_limits<double>::infinity();
}

}  // namespace clutch::master
