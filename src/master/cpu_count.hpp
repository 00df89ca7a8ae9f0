// How many CPUs this process may really use: the affinity mask, lowered by a cgroup CPU quota.
// (egg's os.cpus() counts the host's CPUs and overcommits inside containers.)
#pragma once

#include <optional>
#include <string_view>

namespace clutch::master {

// cgroup v2 "cpu.max" ("max 100000" or "150000 100000"): the quota in CPUs, rounded up;
// nullopt when unlimited or unreadable.
std::optional<unsigned> cpus_from_cgroup_v2(std::string_view cpu_max);
// cgroup v1 cpu.cfs_quota_us and cpu.cfs_period_us; quota -1 means unlimited.
std::optional<unsigned> cpus_from_cgroup_v1(std::string_view quota_us, std::string_view period_us);
// min(affinity, quota), at least 1.
unsigned combine_cpu_limits(unsigned affinity, std::optional<unsigned> quota);

// Reads sched_getaffinity and this process's cgroup files.
unsigned usable_cpus();

}  // namespace clutch::master
