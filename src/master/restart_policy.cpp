#include "master/restart_policy.hpp"

#include <algorithm>

namespace clutch::master {

Millis RestartBackoff::on_exit(Millis uptime) {
  if (uptime >= config_.min_uptime) {
    consecutive_crashes_ = 0;
    return Millis{0};
  }
  ++consecutive_crashes_;
  // Double per consecutive crash; the shift is bounded so it cannot overflow before the cap.
  uint32_t doublings = std::min<uint32_t>(consecutive_crashes_ - 1, 30);
  auto delay = config_.backoff_initial * (int64_t{1} << doublings);
  return std::min<Millis>(delay, config_.backoff_max);
}

}  // namespace clutch::master
