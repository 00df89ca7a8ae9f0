#include "master/admission.hpp"

#include <fmt/format.h>

#include "common/config_keys.hpp"

namespace clutch::master {

std::string refusal(const Activity& now) {
  if (!now.running) return "the cluster is " + now.state;
  if (now.upgrading) return "an upgrade is in progress";
  if (now.reloading) return "a reload is in progress";
  if (now.scaling) return "a scale is in progress";
  return "";
}

std::string scale_target_refusal(long long workers) {
  if (workers >= 1 && workers <= static_cast<long long>(kMaxWorkers)) return "";
  return fmt::format("cannot scale to {} workers: from 1 to {}", workers, kMaxWorkers);
}

}  // namespace clutch::master
