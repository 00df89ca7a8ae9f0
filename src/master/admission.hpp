// Which operator actions may start now, whoever asks (SIGHUP, clutchctl, the dashboard): one rule
// for every entry point. One operation at a time, and only while the cluster runs: a reload, a
// scale or an upgrade begun beside another would replace or retire the same slots twice, and a
// restart of one process waits for them too (restarts of different slots may run together: each
// slot has its own replacement). Pure, so the rule is unit-tested apart from the supervisor.
#pragma once

#include <string>

namespace clutch::master {

// What the supervisor is doing now, as the rule needs it.
struct Activity {
  bool running = false;  // started and not stopping
  std::string state;     // the cluster's state word when not running ("starting", "stopping")
  bool reloading = false, scaling = false, upgrading = false;
};

// "" when an operation (reload, scale, upgrade, restart) may start, else why not, for the log
// and the answer ("a reload is in progress").
std::string refusal(const Activity& now);

// "" when a scale to `workers` is within bounds (1 to kMaxWorkers), else why not.
std::string scale_target_refusal(long long workers);

}  // namespace clutch::master
