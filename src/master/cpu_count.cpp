#include "master/cpu_count.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <string>

namespace clutch::master {
namespace {

std::optional<long long> to_number(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  long long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<unsigned> quota_to_cpus(long long quota, long long period) {
  if (quota <= 0 || period <= 0) return std::nullopt;
  return static_cast<unsigned>((quota + period - 1) / period);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The cgroup v2 path of this process ("0::/some/group"), or "" when not on v2.
std::string cgroup_v2_path() {
  std::istringstream lines(read_file("/proc/self/cgroup"));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return "";
}

}  // namespace

std::optional<unsigned> cpus_from_cgroup_v2(std::string_view cpu_max) {
  auto space = cpu_max.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  std::string_view quota = cpu_max.substr(0, space);
  if (quota == "max") return std::nullopt;
  auto q = to_number(quota), p = to_number(cpu_max.substr(space + 1));
  if (!q || !p) return std::nullopt;
  return quota_to_cpus(*q, *p);
}

std::optional<unsigned> cpus_from_cgroup_v1(std::string_view quota_us, std::string_view period_us) {
  auto q = to_number(quota_us), p = to_number(period_us);
  if (!q || !p) return std::nullopt;
  return quota_to_cpus(*q, *p);
}

unsigned combine_cpu_limits(unsigned affinity, std::optional<unsigned> quota) {
  unsigned n = std::max(affinity, 1u);
  if (quota) n = std::min(n, std::max(*quota, 1u));
  return n;
}

unsigned usable_cpus() {
  unsigned affinity = 0;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    affinity = static_cast<unsigned>(CPU_COUNT(&set));
  } else {
    affinity = static_cast<unsigned>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  }
  std::optional<unsigned> quota;
  std::string v2 = cgroup_v2_path();
  if (!v2.empty()) quota = cpus_from_cgroup_v2(read_file("/sys/fs/cgroup" + v2 + "/cpu.max"));
  if (!quota) quota = cpus_from_cgroup_v2(read_file("/sys/fs/cgroup/cpu.max"));
  if (!quota) {
    quota = cpus_from_cgroup_v1(read_file("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
                                read_file("/sys/fs/cgroup/cpu/cpu.cfs_period_us"));
  }
  return combine_cpu_limits(affinity, quota);
}

}  // namespace clutch::master
