// Where a PostgreSQL consumer's claims start (mq/claim_cursor.hpp): past its own leases, and
// from the first id whenever something below may be visible.
#include "mq/claim_cursor.hpp"

#include <gtest/gtest.h>

namespace clutch::mq {
namespace {

using namespace std::chrono_literals;
using Clock = ClaimCursor::Clock;

TEST(ClaimCursor, TheFirstClaimStartsFromTheFirstIdAndLaterOnesPastTheHighestClaimed) {
  ClaimCursor cursor(1s);
  Clock::time_point t{};
  EXPECT_EQ(cursor.next_start(t), 0);
  cursor.claimed(256);
  cursor.claimed(100);  // a batch's ids come in any order: the highest counts
  EXPECT_EQ(cursor.next_start(t + 10ms), 256);
  cursor.claimed(512);
  EXPECT_EQ(cursor.next_start(t + 20ms), 512);
}

TEST(ClaimCursor, EveryPeriodAClaimLooksFromTheStartAgain) {
  // A lease that expired, another instance's release, a row committed after a later id: all
  // below the cursor, found within the period.
  ClaimCursor cursor(1s);
  Clock::time_point t{};
  EXPECT_EQ(cursor.next_start(t), 0);
  cursor.claimed(1000);
  EXPECT_EQ(cursor.next_start(t + 999ms), 1000);
  EXPECT_EQ(cursor.next_start(t + 1s), 0);
  EXPECT_EQ(cursor.next_start(t + 1s + 1ms), 1000);  // the period starts again from there
}

TEST(ClaimCursor, WhatThisConsumerMadeVisibleIsLookedAtByTheNextClaim) {
  ClaimCursor cursor(1s);
  Clock::time_point t{};
  cursor.next_start(t);
  cursor.claimed(700);
  cursor.rescan();  // a release, a recovery, a reconnection, a take-over
  EXPECT_EQ(cursor.next_start(t + 1ms), 0);
  EXPECT_EQ(cursor.next_start(t + 2ms), 700);
}

TEST(ClaimCursor, ARetryComesDueWithAClaimFromTheStart) {
  ClaimCursor cursor(10s);
  Clock::time_point t{};
  cursor.next_start(t);
  cursor.claimed(300);
  cursor.rescan_by(t + 200ms);  // retried with a 200 ms back-off
  EXPECT_EQ(cursor.next_start(t + 199ms), 300);
  EXPECT_EQ(cursor.next_start(t + 200ms), 0);
  cursor.rescan_by(t + 20s);  // a later retry never postpones the period's own look
  EXPECT_EQ(cursor.next_start(t + 10s + 200ms), 0);
}

}  // namespace
}  // namespace clutch::mq
