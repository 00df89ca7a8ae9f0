#include "master/recent_keys.hpp"

#include <gtest/gtest.h>

#include <string>

namespace clutch::master {
namespace {

TEST(RecentKeys, RemembersWhoHandledAKeyAndForgetsTheOldestPastCapacity) {
  RecentKeys keys(3);
  keys.remember("a", 1);
  keys.remember("b", 2);
  keys.remember("c", 3);
  EXPECT_EQ(keys.find("a"), 1);
  keys.remember("d", 4);  // "a" is the oldest: forgotten
  EXPECT_FALSE(keys.find("a"));
  EXPECT_EQ(keys.find("b"), 2);
  EXPECT_EQ(keys.find("d"), 4);
  EXPECT_EQ(keys.size(), 3u);
}

TEST(RecentKeys, ARepeatedKeyUpdatesItsHandlerWithoutTakingASecondPlace) {
  RecentKeys keys(2);
  keys.remember("a", 1);
  keys.remember("a", 5);
  keys.remember("b", 2);
  EXPECT_EQ(keys.find("a"), 5);
  EXPECT_EQ(keys.size(), 2u);
}

TEST(RecentKeys, CapacityZeroRemembersNothing) {
  RecentKeys keys(0);
  keys.remember("a", 1);
  EXPECT_FALSE(keys.find("a"));
}

}  // namespace
}  // namespace clutch::master
