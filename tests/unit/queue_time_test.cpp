// X-Request-Start's forms (http/queue_time.hpp).
#include "http/queue_time.hpp"

#include <gtest/gtest.h>

namespace clutch::http {
namespace {

using std::chrono::microseconds;
using std::chrono::system_clock;

// 2026-12-08T00:00:00Z, and 250 ms after it.
const system_clock::time_point kStart{std::chrono::seconds(1796688000)};
const system_clock::time_point kNow = kStart + std::chrono::milliseconds(250);

TEST(QueueTime, SecondsWithAFractionMillisecondsAndMicrosecondsAllRead) {
  EXPECT_EQ(queue_age_from_header("t=1796688000.000", kNow), microseconds(250'000));  // nginx
  EXPECT_EQ(queue_age_from_header("t=1796688000.1", kNow), microseconds(150'000));
  EXPECT_EQ(queue_age_from_header("t=1796688000125", kNow), microseconds(125'000));  // Heroku
  EXPECT_EQ(queue_age_from_header("t=1796688000200000", kNow), microseconds(50'000));
  EXPECT_EQ(queue_age_from_header("1796688000", kNow), microseconds(250'000));  // no t=
  EXPECT_EQ(queue_age_from_header(" t=1796688000.0000001", kNow), microseconds(250'000));
}

TEST(QueueTime, ALittleAheadIsZeroAndWhatCannotBeBelievedIsNothing) {
  EXPECT_EQ(queue_age_from_header("t=1796688001", kNow), microseconds(0));  // clocks 0.75 s apart
  EXPECT_EQ(queue_age_from_header("t=1796698000", kNow), std::nullopt);     // hours ahead
  EXPECT_EQ(queue_age_from_header("t=1", kNow), std::nullopt);              // 1970
  for (auto bad : {"", "t=", "t=abc", "t=-5", "t=12.x", "t=1796688000.", "soon", "t=1e9",
                   "t=99999999999999999999"}) {
    EXPECT_EQ(queue_age_from_header(bad, kNow), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace clutch::http
