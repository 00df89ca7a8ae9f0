#include "common/units.hpp"

#include <gtest/gtest.h>

namespace clutch {
namespace {

using std::chrono::milliseconds;

TEST(Units, Durations) {
  EXPECT_EQ(parse_duration("250"), milliseconds(250));
  EXPECT_EQ(parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(parse_duration("5s"), milliseconds(5000));
  EXPECT_EQ(parse_duration(" 2 m "), milliseconds(120000));
  EXPECT_EQ(parse_duration("1h"), milliseconds(3600000));
  EXPECT_EQ(parse_duration("30d"), milliseconds(int64_t{30} * 86400000));
  EXPECT_EQ(parse_duration("5S"), milliseconds(5000));
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("s"));
  EXPECT_FALSE(parse_duration("-5s"));
  EXPECT_FALSE(parse_duration("5 parsecs"));
  EXPECT_FALSE(parse_duration("99999999999999999999999"));
  EXPECT_FALSE(parse_duration("9999999999999999h"));
}

TEST(Units, MicrosecondListsAreIncreasingDurationsWithUnits) {
  EXPECT_EQ(parse_microsecond_list("50us,1ms, 2s"), (std::vector<uint64_t>{50, 1000, 2000000}));
  EXPECT_EQ(parse_microsecond_list("5ms"), (std::vector<uint64_t>{5000}));
  EXPECT_FALSE(parse_microsecond_list(""));
  EXPECT_FALSE(parse_microsecond_list("50"));       // a unit is needed
  EXPECT_FALSE(parse_microsecond_list("1ms,1ms"));  // strictly increasing
  EXPECT_FALSE(parse_microsecond_list("2ms,1ms"));
  EXPECT_FALSE(parse_microsecond_list("0us,1ms"));  // a bound of 0 holds nothing
  EXPECT_FALSE(parse_microsecond_list("1ms,,2ms"));
  EXPECT_FALSE(parse_microsecond_list("1m"));  // minutes are not a latency bound
}

TEST(Units, Sizes) {
  EXPECT_EQ(parse_size("1024"), 1024u);
  EXPECT_EQ(parse_size("64MiB"), 64u << 20);
  EXPECT_EQ(parse_size("64mb"), 64u << 20);
  EXPECT_EQ(parse_size("1G"), 1u << 30);
  EXPECT_EQ(parse_size("4 KiB"), 4096u);
  EXPECT_FALSE(parse_size("lots"));
  EXPECT_FALSE(parse_size("1TB"));
}

TEST(Units, Unsigned) {
  EXPECT_EQ(parse_unsigned("42"), 42u);
  EXPECT_FALSE(parse_unsigned("42x"));
  EXPECT_FALSE(parse_unsigned("-1"));
}

}  // namespace
}  // namespace clutch
