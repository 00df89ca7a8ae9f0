#include "master/restart_policy.hpp"

#include <gtest/gtest.h>

namespace clutch::master {
namespace {

using std::chrono::milliseconds;

RestartPolicyConfig policy() {
  return {milliseconds(1000), milliseconds(100), milliseconds(1000)};
}

TEST(RestartPolicy, StableChildRestartsAtOnce) {
  RestartBackoff b(policy());
  EXPECT_EQ(b.on_exit(milliseconds(5000)), milliseconds(0));
  EXPECT_FALSE(b.crashing());
}

TEST(RestartPolicy, CrashLoopBacksOffExponentiallyUpToTheCap) {
  RestartBackoff b(policy());
  EXPECT_EQ(b.on_exit(milliseconds(10)), milliseconds(100));
  EXPECT_EQ(b.on_exit(milliseconds(10)), milliseconds(200));
  EXPECT_EQ(b.on_exit(milliseconds(10)), milliseconds(400));
  EXPECT_EQ(b.on_exit(milliseconds(10)), milliseconds(800));
  EXPECT_EQ(b.on_exit(milliseconds(10)), milliseconds(1000));
  EXPECT_EQ(b.on_exit(milliseconds(10)), milliseconds(1000));
  EXPECT_TRUE(b.crashing());
  EXPECT_EQ(b.consecutive_crashes(), 6u);
}

TEST(RestartPolicy, ManyCrashesNeverOverflow) {
  RestartBackoff b(policy());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(b.on_exit(milliseconds(0)) <= milliseconds(1000), true);
  EXPECT_EQ(b.on_exit(milliseconds(0)), milliseconds(1000));
}

TEST(RestartPolicy, StableRunResetsTheBackoff) {
  RestartBackoff b(policy());
  b.on_exit(milliseconds(10));
  b.on_exit(milliseconds(10));
  b.on_stable();
  EXPECT_FALSE(b.crashing());
  EXPECT_EQ(b.on_exit(milliseconds(10)), milliseconds(100));
}

TEST(RestartPolicy, DeathAfterMinUptimeIsNotACrash) {
  RestartBackoff b(policy());
  b.on_exit(milliseconds(10));
  EXPECT_EQ(b.on_exit(milliseconds(1000)), milliseconds(0));
  EXPECT_FALSE(b.crashing());
}

TEST(RestartBudget, GivesUpOnlyPastMaxRestartsWithinTheWindow) {
  using TP = std::chrono::steady_clock::time_point;
  auto at = [](int ms) { return TP(milliseconds(ms)); };
  RestartBudget budget(3, milliseconds(1000));
  EXPECT_TRUE(budget.on_exit(at(0)));
  EXPECT_TRUE(budget.on_exit(at(100)));
  EXPECT_TRUE(budget.on_exit(at(200)));
  EXPECT_FALSE(budget.on_exit(at(300))) << "a fourth exit within 1 s";
  // Exits older than the window no longer count.
  RestartBudget slow(3, milliseconds(1000));
  for (int t = 0; t < 10000; t += 400) EXPECT_TRUE(slow.on_exit(at(t))) << t;
  EXPECT_LE(slow.recent_exits(), 3u);
}

TEST(RestartBudget, ZeroMeansNoLimit) {
  RestartBudget budget(0, milliseconds(1000));
  for (int i = 0; i < 1000; ++i)
    EXPECT_TRUE(budget.on_exit(std::chrono::steady_clock::time_point(milliseconds(i))));
}

}  // namespace
}  // namespace clutch::master
