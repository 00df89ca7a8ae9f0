// A worker's own request limit (master/recycling.hpp): max_requests plus a jitter of 0..J.
#include "master/recycling.hpp"

#include <gtest/gtest.h>

#include <set>

namespace clutch::master {
namespace {

TEST(Recycling, NoMaxRequestsIsNoLimit) {
  EXPECT_EQ(request_limit(0, 0, 12345), 0u);
  EXPECT_EQ(request_limit(0, 50, 12345), 0u);
}

TEST(Recycling, TheJitterSpreadsLimitsOverEveryValueFromMaxToMaxPlusJitter) {
  EXPECT_EQ(request_limit(1000, 0, 987654321), 1000u);
  std::set<uint64_t> seen;
  for (uint64_t r = 0; r < 1000; ++r) {
    uint64_t limit = request_limit(1000, 5, r * 2654435761u);
    EXPECT_GE(limit, 1000u);
    EXPECT_LE(limit, 1005u);
    seen.insert(limit);
  }
  EXPECT_EQ(seen.size(), 6u);  // both ends reachable: gunicorn's randint(0, jitter)
  // No division by zero nor wrap at the top (the config bounds both at 10^12 anyway).
  EXPECT_GE(request_limit(10, UINT64_MAX, UINT64_MAX - 3), 10u);
  EXPECT_EQ(request_limit(UINT64_MAX - 1, 100, 99), UINT64_MAX);
}

}  // namespace
}  // namespace clutch::master
