// When to restart a dead child: at once after a stable run, with exponential back-off while it
// keeps dying young. Pure logic, no clock of its own: the master feeds it uptimes.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>

namespace clutch::master {

using Millis = std::chrono::milliseconds;

struct RestartPolicyConfig {
  Millis min_uptime{1000};      // a child that dies younger than this is crashing
  Millis backoff_initial{100};  // delay before the first restart of a crashing child
  Millis backoff_max{10000};    // cap of the exponential back-off
};

// One per process slot (the agent, or worker index i): the slot survives its processes.
class RestartBackoff {
 public:
  explicit RestartBackoff(RestartPolicyConfig config = {}) : config_(config) {}

  // The slot's process died after `uptime`; returns how long to wait before starting the next one.
  Millis on_exit(Millis uptime);
  // The slot's current process has run for min_uptime: forget earlier crashes.
  void on_stable() { consecutive_crashes_ = 0; }

  bool crashing() const { return consecutive_crashes_ > 0; }
  uint32_t consecutive_crashes() const { return consecutive_crashes_; }
  const RestartPolicyConfig& config() const { return config_; }

 private:
  RestartPolicyConfig config_;
  uint32_t consecutive_crashes_ = 0;
};

// Opt-in limit on how often a slot may die: more than `max_restarts` unrequested exits within
// `window` means the cluster cannot heal itself, and the master gives up (exit 1) so that an
// outer supervisor (systemd, Kubernetes) can act. max_restarts 0 means no limit. Pure: the
// caller passes the time.
class RestartBudget {
 public:
  RestartBudget(uint32_t max_restarts, Millis window) : max_(max_restarts), window_(window) {}

  // A process of the slot died unasked at `now`; false once the budget is spent.
  template <typename TimePoint>
  bool on_exit(TimePoint now) {
    if (max_ == 0) return true;
    auto at = std::chrono::duration_cast<Millis>(now.time_since_epoch());
    exits_.push_back(at);
    while (!exits_.empty() && exits_.front() <= at - window_) exits_.pop_front();
    return exits_.size() <= max_;
  }
  std::size_t recent_exits() const { return exits_.size(); }

 private:
  uint32_t max_;
  Millis window_;
  std::deque<Millis> exits_;
};

}  // namespace clutch::master
