#include "master/cpu_count.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

namespace clutch::master {
namespace {

TEST(CpuCount, CgroupV2Quota) {
  EXPECT_EQ(cpus_from_cgroup_v2("max 100000\n"), std::nullopt);
  EXPECT_EQ(cpus_from_cgroup_v2("200000 100000\n"), 2u);
  EXPECT_EQ(cpus_from_cgroup_v2("150000 100000"), 2u);  // 1.5 CPUs round up
  EXPECT_EQ(cpus_from_cgroup_v2("50000 100000"), 1u);
  EXPECT_EQ(cpus_from_cgroup_v2(""), std::nullopt);
  EXPECT_EQ(cpus_from_cgroup_v2("garbage here"), std::nullopt);
}

TEST(CpuCount, CgroupV1Quota) {
  EXPECT_EQ(cpus_from_cgroup_v1("-1\n", "100000\n"), std::nullopt);
  EXPECT_EQ(cpus_from_cgroup_v1("300000\n", "100000\n"), 3u);
  EXPECT_EQ(cpus_from_cgroup_v1("", ""), std::nullopt);
}

TEST(CpuCount, QuotaLowersAffinityNeverBelowOne) {
  EXPECT_EQ(combine_cpu_limits(8, 2u), 2u);
  EXPECT_EQ(combine_cpu_limits(2, 8u), 2u);
  EXPECT_EQ(combine_cpu_limits(4, std::nullopt), 4u);
  EXPECT_EQ(combine_cpu_limits(0, std::nullopt), 1u);
}

TEST(CpuCount, UsableCpusIsPositiveAndWithinTheHost) {
  unsigned n = usable_cpus();
  EXPECT_GE(n, 1u);
  EXPECT_LE(n, static_cast<unsigned>(sysconf(_SC_NPROCESSORS_CONF)));
}

}  // namespace
}  // namespace clutch::master
