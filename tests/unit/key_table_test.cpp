#include "master/key_table.hpp"

#include <gtest/gtest.h>

#include <string>

namespace clutch::master {
namespace {

// A key handled by `pid` through message `id`.
void handle(KeyTable& keys, const std::string& key, uint64_t id, pid_t pid) {
  keys.start(key, id);
  keys.finish(key, pid);
}

TEST(KeyTable, AKeyInFlightIsKnownByItsMessageThenByWhoHandledIt) {
  KeyTable keys(3);
  EXPECT_EQ(keys.find("a"), nullptr);
  std::string_view stored = keys.start(std::string("a"), 7);
  EXPECT_EQ(stored, "a");
  ASSERT_NE(keys.find("a"), nullptr);
  EXPECT_EQ(keys.find("a")->in_flight, 7u);
  keys.finish("a", 42);
  ASSERT_NE(keys.find("a"), nullptr);
  EXPECT_EQ(keys.find("a")->in_flight, 0u);
  EXPECT_EQ(keys.find("a")->handled_by, 42);
}

TEST(KeyTable, AFailedMessagesKeyIsForgottenSoItRunsAgain) {
  KeyTable keys(3);
  keys.start("a", 1);
  keys.finish("a", 0);
  EXPECT_EQ(keys.find("a"), nullptr);
  EXPECT_EQ(keys.size(), 0u);
}

TEST(KeyTable, RemembersTheHandledKeysAndForgetsTheOldestPastCapacity) {
  KeyTable keys(3);
  handle(keys, "a", 1, 1);
  handle(keys, "b", 2, 2);
  handle(keys, "c", 3, 3);
  keys.start("x", 9);  // in flight: not counted against the remembered ones
  EXPECT_EQ(keys.find("a")->handled_by, 1);
  handle(keys, "d", 4, 4);  // "a" is the oldest: forgotten
  EXPECT_EQ(keys.find("a"), nullptr);
  EXPECT_EQ(keys.find("b")->handled_by, 2);
  EXPECT_EQ(keys.find("d")->handled_by, 4);
  EXPECT_EQ(keys.find("x")->in_flight, 9u);
  EXPECT_EQ(keys.remembered(), 3u);
}

TEST(KeyTable, AForgottenButStillOrderedKeyCanRunAgainAndIsNeverLeftDangling) {
  KeyTable keys(2);
  handle(keys, "a", 1, 1);
  handle(keys, "b", 2, 2);
  // "a" sent again while remembered would be answered from memory; say its memory was dropped
  // by a failed rerun: started, then failed. The table must not keep a stale pointer to it.
  keys.start("a", 3);
  keys.finish("a", 0);
  EXPECT_EQ(keys.find("a"), nullptr);
  handle(keys, "c", 4, 3);  // pushes out the oldest place, "a"'s
  handle(keys, "d", 5, 4);  // and "b"
  EXPECT_EQ(keys.find("a"), nullptr);
  EXPECT_EQ(keys.find("b"), nullptr);
  EXPECT_EQ(keys.find("c")->handled_by, 3);
  EXPECT_EQ(keys.find("d")->handled_by, 4);
  EXPECT_EQ(keys.size(), 2u);
}

TEST(KeyTable, AKeyInFlightOutlivesItsTurnToBeForgotten) {
  KeyTable keys(1);
  handle(keys, "a", 1, 1);
  keys.start("a", 2);       // a rerun: in flight again, still in order_
  handle(keys, "b", 3, 2);  // "a"'s turn to be forgotten comes while it is in flight
  ASSERT_NE(keys.find("a"), nullptr);
  EXPECT_EQ(keys.find("a")->in_flight, 2u);
  keys.finish("a", 5);
  EXPECT_EQ(keys.find("a")->handled_by, 5);
  EXPECT_EQ(keys.find("b"), nullptr);  // "a" took the one place again
}

TEST(KeyTable, StoppingForgetsTheKeysInFlightAndKeepsTheHandledOnes) {
  KeyTable keys(4);
  handle(keys, "a", 1, 1);
  keys.start("b", 2);
  keys.forget_in_flight();
  EXPECT_EQ(keys.find("b"), nullptr);
  EXPECT_EQ(keys.find("a")->handled_by, 1);
}

TEST(KeyTable, CapacityZeroRemembersNothingHandled) {
  KeyTable keys(0);
  keys.start("a", 1);
  EXPECT_EQ(keys.find("a")->in_flight, 1u);
  keys.finish("a", 1);
  EXPECT_EQ(keys.find("a"), nullptr);
}

}  // namespace
}  // namespace clutch::master
