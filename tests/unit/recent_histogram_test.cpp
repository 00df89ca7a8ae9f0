// The recent window of a reported histogram (master/recent_histogram.hpp): the queue time
// `clutchctl status` shows.
#include "master/recent_histogram.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace clutch::master {
namespace {

using namespace std::chrono_literals;
using Clock = RecentHistogram::Clock;
const std::vector<double> kBounds = {0.001, 0.01, 0.1, 1};  // and +Inf

TEST(RecentHistogram, NothingObservedIsNoFigure) {
  RecentHistogram h(10s);
  EXPECT_EQ(h.quantile(0.99), std::nullopt);
  h.report(Clock::time_point{}, kBounds, {0, 0, 0, 0, 0});
  EXPECT_EQ(h.quantile(0.99), std::nullopt);
}

TEST(RecentHistogram, TheQuantileIsTheUpperBoundOfItsBucket) {
  RecentHistogram h(10s);
  h.report(Clock::time_point{}, kBounds, {90, 9, 1, 0, 0});  // 100 requests: 90 under 1 ms
  EXPECT_EQ(h.quantile(0.5), 0.001);
  EXPECT_EQ(h.quantile(0.95), 0.01);
  EXPECT_EQ(h.quantile(0.999), 0.1);
  h.report(Clock::time_point{} + 1s, kBounds, {90, 9, 1, 0, 50});  // 50 past the last bound
  EXPECT_TRUE(std::isinf(*h.quantile(0.99)));
}

TEST(RecentHistogram, AnOldOverloadLeavesTheWindow) {
  RecentHistogram h(10s);
  Clock::time_point t{};
  h.report(t, kBounds, {0, 0, 0, 1000, 0});  // a bad minute: 1000 requests that waited up to 1 s
  EXPECT_EQ(h.quantile(0.99), 1.0);
  h.report(t + 10s, kBounds, {500, 0, 0, 1000, 0});  // then 500 fast ones
  h.report(t + 20s, kBounds,
           {1500, 0, 0, 1000, 0});  // and 1000 more: the base is now the 10 s report
  EXPECT_EQ(h.quantile(0.99), 0.001);
}

}  // namespace
}  // namespace clutch::master
