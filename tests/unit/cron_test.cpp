#include "schedule/cron.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace clutch::schedule {
namespace {

struct Case {
  const char* expression;
  const char* zone;
  const char* from;
  std::vector<std::string> expected;  // the next fire times, in the zone's ISO-8601 form
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << "'" << c.expression << "' " << c.zone << " " << c.from;
}

std::vector<std::string> next_times(const Case& c) {
  TimeZone zone(c.zone);
  CronExpression cron = parse_cron(c.expression);
  std::time_t at = parse_iso8601(c.from, zone);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < c.expected.size(); ++i) {
    auto next = next_fire(cron, zone, at);
    if (!next) break;
    out.push_back(format_iso8601(*next, zone));
    at = *next;
  }
  return out;
}

class CronNext : public ::testing::TestWithParam<Case> {};

TEST_P(CronNext, FiresAtTheExpectedTimes) {
  const Case& c = GetParam();
  EXPECT_EQ(next_times(c), c.expected) << c.expression << " in " << c.zone << " after " << c.from;
}

const char* U = "UTC";
const char* NY = "America/New_York";
const char* BER = "Europe/Berlin";

INSTANTIATE_TEST_SUITE_P(
    Expressions, CronNext,
    ::testing::Values(
        // Quartz's day forms. 2026: Jan 31 Sat, Feb 28 Sat, Mar 31 Tue, Apr 30 Thu, May 31 Sun.
        Case{"0 0 L * *",
             U,
             "2026-01-15T00:00:00",
             {"2026-01-31T00:00:00+00:00", "2026-02-28T00:00:00+00:00",
              "2026-03-31T00:00:00+00:00"}},
        Case{"0 0 L 2 *",
             U,
             "2027-01-01T00:00:00",
             {"2027-02-28T00:00:00+00:00", "2028-02-29T00:00:00+00:00"}},
        Case{"0 0 L-2 * *",
             U,
             "2026-01-01T00:00:00",
             {"2026-01-29T00:00:00+00:00", "2026-02-26T00:00:00+00:00"}},
        Case{"0 0 LW * *",  // the last weekday: Fri Jan 30, Fri Feb 27, Tue Mar 31, Fri May 29
             U,
             "2026-01-01T00:00:00",
             {"2026-01-30T00:00:00+00:00", "2026-02-27T00:00:00+00:00",
              "2026-03-31T00:00:00+00:00"}},
        Case{"0 0 15W * *",  // Mar 15 2026 is a Sunday: Monday the 16th; Aug 15 a Saturday: 14th
             U,
             "2026-03-01T00:00:00",
             {"2026-03-16T00:00:00+00:00", "2026-04-15T00:00:00+00:00"}},
        Case{"0 0 1W * *",  // Aug 1 2026 is a Saturday: Monday the 3rd (not July)
             U,
             "2026-07-02T00:00:00",
             {"2026-08-03T00:00:00+00:00"}},
        Case{"0 0 * * 5L",  // the last Friday
             U,
             "2026-01-01T00:00:00",
             {"2026-01-30T00:00:00+00:00", "2026-02-27T00:00:00+00:00",
              "2026-03-27T00:00:00+00:00"}},
        Case{"0 0 * * MON#2",  // the second Monday
             U,
             "2026-01-01T00:00:00",
             {"2026-01-12T00:00:00+00:00", "2026-02-09T00:00:00+00:00"}},
        Case{"0 0 1,L * *",
             U,
             "2026-01-15T00:00:00",
             {"2026-01-31T00:00:00+00:00", "2026-02-01T00:00:00+00:00",
              "2026-02-28T00:00:00+00:00"}},
        // Basics: every minute, fixed times, strictly after the start.
        Case{"* * * * *",
             U,
             "2026-01-01T00:00:00",
             {"2026-01-01T00:01:00+00:00", "2026-01-01T00:02:00+00:00"}},
        Case{"* * * * *", U, "2026-01-01T00:00:30", {"2026-01-01T00:01:00+00:00"}},
        Case{"0 * * * *",
             U,
             "2026-01-01T00:00:00",
             {"2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"}},
        Case{"30 9 * * *", U, "2026-01-01T09:30:00", {"2026-01-02T09:30:00+00:00"}},
        Case{"30 9 * * *", U, "2026-01-01T09:29:59", {"2026-01-01T09:30:00+00:00"}},
        Case{"0 0 * * *", U, "2026-12-31T12:00:00", {"2027-01-01T00:00:00+00:00"}},
        Case{"59 23 31 12 *",
             U,
             "2026-06-01T00:00:00",
             {"2026-12-31T23:59:00+00:00", "2027-12-31T23:59:00+00:00"}},
        // Lists, ranges, steps.
        Case{"0,30 * * * *",
             U,
             "2026-01-01T00:00:00",
             {"2026-01-01T00:30:00+00:00", "2026-01-01T01:00:00+00:00"}},
        Case{"*/15 * * * *",
             U,
             "2026-01-01T00:00:00",
             {"2026-01-01T00:15:00+00:00", "2026-01-01T00:30:00+00:00", "2026-01-01T00:45:00+00:00",
              "2026-01-01T01:00:00+00:00"}},
        Case{"10-12 * * * *",
             U,
             "2026-01-01T00:11:00",
             {"2026-01-01T00:12:00+00:00", "2026-01-01T01:10:00+00:00"}},
        Case{"5-50/15 * * * *",
             U,
             "2026-01-01T00:00:00",
             {"2026-01-01T00:05:00+00:00", "2026-01-01T00:20:00+00:00", "2026-01-01T00:35:00+00:00",
              "2026-01-01T00:50:00+00:00", "2026-01-01T01:05:00+00:00"}},
        Case{"7/20 * * * *",
             U,
             "2026-01-01T00:00:00",
             {"2026-01-01T00:07:00+00:00", "2026-01-01T00:27:00+00:00", "2026-01-01T00:47:00+00:00",
              "2026-01-01T01:07:00+00:00"}},
        Case{"0 */6 * * *",
             U,
             "2026-01-01T01:00:00",
             {"2026-01-01T06:00:00+00:00", "2026-01-01T12:00:00+00:00", "2026-01-01T18:00:00+00:00",
              "2026-01-02T00:00:00+00:00"}},
        Case{"0 9-17/4 * * *",
             U,
             "2026-01-01T00:00:00",
             {"2026-01-01T09:00:00+00:00", "2026-01-01T13:00:00+00:00", "2026-01-01T17:00:00+00:00",
              "2026-01-02T09:00:00+00:00"}},
        Case{"0 8,12,18 * * *",
             U,
             "2026-01-01T12:00:00",
             {"2026-01-01T18:00:00+00:00", "2026-01-02T08:00:00+00:00"}},
        Case{"1,2,3-5,10-20/5 0 * * *",
             U,
             "2026-01-01T00:00:00",
             {"2026-01-01T00:01:00+00:00", "2026-01-01T00:02:00+00:00", "2026-01-01T00:03:00+00:00",
              "2026-01-01T00:04:00+00:00", "2026-01-01T00:05:00+00:00", "2026-01-01T00:10:00+00:00",
              "2026-01-01T00:15:00+00:00", "2026-01-01T00:20:00+00:00",
              "2026-01-02T00:01:00+00:00"}},
        // Seconds (six fields).
        Case{"*/10 * * * * *",
             U,
             "2026-01-01T00:00:00",
             {"2026-01-01T00:00:10+00:00", "2026-01-01T00:00:20+00:00"}},
        Case{"30 0 12 * * *", U, "2026-01-01T12:00:30", {"2026-01-02T12:00:30+00:00"}},
        Case{"0 0 0 1 1 *", U, "2026-01-01T00:00:00", {"2027-01-01T00:00:00+00:00"}},
        Case{"15,45 * * * * *",
             U,
             "2026-01-01T00:00:15",
             {"2026-01-01T00:00:45+00:00", "2026-01-01T00:01:15+00:00"}},
        // Days of the week, with names and 7 = Sunday.
        Case{"0 9 * * MON",
             U,
             "2026-01-01T00:00:00",
             {"2026-01-05T09:00:00+00:00", "2026-01-12T09:00:00+00:00"}},
        Case{"0 9 * * 1-5",
             U,
             "2026-01-02T10:00:00",
             {"2026-01-05T09:00:00+00:00", "2026-01-06T09:00:00+00:00"}},
        Case{"0 9 * * sat,sun",
             U,
             "2026-01-01T00:00:00",
             {"2026-01-03T09:00:00+00:00", "2026-01-04T09:00:00+00:00",
              "2026-01-10T09:00:00+00:00"}},
        Case{"0 0 * * 7", U, "2026-01-01T00:00:00", {"2026-01-04T00:00:00+00:00"}},
        Case{"0 0 * * 0", U, "2026-01-01T00:00:00", {"2026-01-04T00:00:00+00:00"}},
        Case{"0 0 * * 5-7",
             U,
             "2026-01-01T00:00:00",
             {"2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00",
              "2026-01-09T00:00:00+00:00"}},
        Case{"0 0 * * */2",
             U,
             "2026-01-01T00:00:00",
             {"2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00",
              "2026-01-06T00:00:00+00:00"}},  // Sun, Tue, Thu, Sat
        // Months, with names.
        Case{"0 0 1 JAN,JUL *",
             U,
             "2026-02-01T00:00:00",
             {"2026-07-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"}},
        Case{"0 0 1 */3 *",
             U,
             "2026-01-15T00:00:00",
             {"2026-04-01T00:00:00+00:00", "2026-07-01T00:00:00+00:00", "2026-10-01T00:00:00+00:00",
              "2027-01-01T00:00:00+00:00"}},
        Case{"0 0 15 mar-may *",
             U,
             "2026-01-01T00:00:00",
             {"2026-03-15T00:00:00+00:00", "2026-04-15T00:00:00+00:00", "2026-05-15T00:00:00+00:00",
              "2027-03-15T00:00:00+00:00"}},
        // Month ends and leap years.
        Case{"0 0 31 * *",
             U,
             "2026-01-31T00:00:00",
             {"2026-03-31T00:00:00+00:00", "2026-05-31T00:00:00+00:00", "2026-07-31T00:00:00+00:00",
              "2026-08-31T00:00:00+00:00"}},
        Case{"0 0 30 * *", U, "2026-01-30T00:00:00", {"2026-03-30T00:00:00+00:00"}},
        Case{"0 0 29 2 *",
             U,
             "2026-01-01T00:00:00",
             {"2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"}},
        Case{"0 0 29 2 *", U, "2096-03-01T00:00:00", {"2104-02-29T00:00:00+00:00"}},
        Case{"0 0 28-31 2 *",
             U,
             "2027-02-27T00:00:00",
             {"2027-02-28T00:00:00+00:00", "2028-02-28T00:00:00+00:00",
              "2028-02-29T00:00:00+00:00"}},
        Case{"0 0 1 * *", U, "2026-12-15T00:00:00", {"2027-01-01T00:00:00+00:00"}},
        Case{"0 0 29 * *", U, "2027-01-29T00:00:00", {"2027-03-29T00:00:00+00:00"}},
        Case{"0 0 29 * *", U, "2028-01-29T00:00:00", {"2028-02-29T00:00:00+00:00"}},
        // Day of month OR day of week when both are restricted; '?' means any.
        Case{"0 0 13 * FRI",
             U,
             "2026-02-01T00:00:00",
             {"2026-02-06T00:00:00+00:00", "2026-02-13T00:00:00+00:00",
              "2026-02-20T00:00:00+00:00"}},
        Case{"0 0 1 * MON",
             U,
             "2026-05-30T00:00:00",
             {"2026-06-01T00:00:00+00:00", "2026-06-08T00:00:00+00:00"}},
        Case{"0 0 ? * MON", U, "2026-01-01T00:00:00", {"2026-01-05T00:00:00+00:00"}},
        Case{"0 0 10 * ?",
             U,
             "2026-01-01T00:00:00",
             {"2026-01-10T00:00:00+00:00", "2026-02-10T00:00:00+00:00"}},
        // Zones without DST changes in the range.
        Case{"0 9 * * *", "Asia/Tokyo", "2026-01-01T10:00:00", {"2026-01-02T09:00:00+09:00"}},
        Case{"0 9 * * *", "Asia/Kolkata", "2026-01-01T00:00:00", {"2026-01-01T09:00:00+05:30"}},
        Case{"0 0 * * *", BER, "2026-01-01T00:00:00Z", {"2026-01-02T00:00:00+01:00"}},
        Case{"0 12 * * *", BER, "2026-07-01T00:00:00", {"2026-07-01T12:00:00+02:00"}},
        // Spring forward (New York 2026-03-08 02:00 -> 03:00): the gap shifts, the rest is normal.
        Case{"30 2 * * *",
             NY,
             "2026-03-07T00:00:00",
             {"2026-03-07T02:30:00-05:00", "2026-03-08T03:30:00-04:00",
              "2026-03-09T02:30:00-04:00"}},
        Case{"0 2 * * *",
             NY,
             "2026-03-07T12:00:00",
             {"2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"}},
        Case{"0 * * * *",
             NY,
             "2026-03-08T00:30:00",
             {"2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00",
              "2026-03-08T04:00:00-04:00"}},
        Case{"30 3 * * *",
             NY,
             "2026-03-07T12:00:00",
             {"2026-03-08T03:30:00-04:00", "2026-03-09T03:30:00-04:00"}},
        Case{"0 1 * * *",
             NY,
             "2026-03-07T12:00:00",
             {"2026-03-08T01:00:00-05:00", "2026-03-09T01:00:00-04:00"}},
        Case{"*/30 * * * *",
             NY,
             "2026-03-08T01:00:00",
             {"2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00"}},
        // Fall back (New York 2026-11-01 02:00 -> 01:00): fixed times once, wildcard hours twice.
        Case{"30 1 * * *",
             NY,
             "2026-10-31T12:00:00",
             {"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
        Case{"30 * * * *",
             NY,
             "2026-11-01T00:00:00",
             {"2026-11-01T00:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00",
              "2026-11-01T02:30:00-05:00"}},
        Case{"0 * * * *",
             NY,
             "2026-11-01T00:30:00",
             {"2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00",
              "2026-11-01T02:00:00-05:00"}},
        Case{"0 1 * * *", NY, "2026-11-01T01:30:00-04:00", {"2026-11-02T01:00:00-05:00"}},
        Case{"0 2 * * *",
             NY,
             "2026-10-31T12:00:00",
             {"2026-11-01T02:00:00-05:00", "2026-11-02T02:00:00-05:00"}},
        Case{"0 0 * * *",
             NY,
             "2026-10-31T12:00:00",
             {"2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"}},
        // Berlin (2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00).
        Case{"30 2 * * *",
             BER,
             "2026-03-28T12:00:00",
             {"2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"}},
        Case{"30 2 * * *",
             BER,
             "2026-10-24T12:00:00",
             {"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}},
        Case{"30 * * * *",
             BER,
             "2026-10-25T01:00:00",
             {"2026-10-25T01:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00",
              "2026-10-25T03:30:00+01:00"}},
        Case{"0 0 * * SUN",
             BER,
             "2026-03-28T00:00:00",
             {"2026-03-29T00:00:00+01:00", "2026-04-05T00:00:00+02:00"}},
        // Start times given with an explicit offset.
        Case{"0 12 * * *", BER, "2026-07-01T10:30:00Z", {"2026-07-02T12:00:00+02:00"}},
        Case{"0 12 * * *", U, "2026-07-01T13:00:00+02:00", {"2026-07-01T12:00:00+00:00"}}));

TEST(CronNext, ImpossibleDateNeverFires) {
  TimeZone utc("UTC");
  EXPECT_FALSE(next_fire(parse_cron("0 0 30 2 *"), utc, 0));
  EXPECT_FALSE(next_fire(parse_cron("0 0 31 4,6,9,11 *"), utc, 0));
}

// Each bad expression, and the part of the message that must point at the bad field.
struct BadCase {
  const char* expression;
  const char* message;
};

void PrintTo(const BadCase& c, std::ostream* os) {
  *os << "'" << c.expression << "'";
}

class CronInvalid : public ::testing::TestWithParam<BadCase> {};

TEST_P(CronInvalid, IsRejectedNamingTheField) {
  const BadCase& c = GetParam();
  try {
    parse_cron(c.expression);
    FAIL() << c.expression << " was accepted";
  } catch (const CronError& e) {
    EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos)
        << c.expression << " -> " << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Expressions, CronInvalid,
    ::testing::Values(BadCase{"", "expected 5 fields"}, BadCase{"* * * *", "got 4"},
                      BadCase{"* * * * * * *", "got 7"},
                      BadCase{"60 * * * *", "field 1 (minute) '60': 60 is out of range 0-59"},
                      BadCase{"* 24 * * *", "field 2 (hour) '24'"},
                      BadCase{"* * 0 * *", "field 3 (day of month) '0'"},
                      BadCase{"* * 32 * *", "field 3 (day of month) '32'"},
                      BadCase{"* * * 13 *", "field 4 (month) '13'"},
                      BadCase{"* * * * 8", "field 5 (day of week) '8'"},
                      BadCase{"* * * FOO *", "unknown name 'FOO'"},
                      BadCase{"* * * * MONDAY", "unknown name 'MONDAY'"},
                      BadCase{"*/0 * * * *", "step 0 is out of range"},
                      BadCase{"*/x * * * *", "step 'x' is not a number"},
                      BadCase{"5-2 * * * *", "range 5-2 goes backwards"},
                      BadCase{"1,,2 * * * *", "empty list item"},
                      BadCase{"a * * * *", "'a' is not a number"},
                      BadCase{"? * * * *", "'?' is only allowed in the day fields"},
                      BadCase{"1-2-3 * * * *", "more than one '-'"},
                      BadCase{"61 * * * * *", "field 1 (seconds) '61'"},
                      BadCase{"0 60 * * * *", "field 2 (minute) '60'"},
                      BadCase{"0 0 32W * *", "'32W': 32 is out of range 1-31"},
                      BadCase{"0 0 L-31 * *", "31 is out of range 0-30"},
                      BadCase{"0 0 * * 1#6", "6 is out of range 1-5"},
                      BadCase{"0 0 * * 9L", "'9L': 9 is out of range 0-7"},
                      BadCase{"0 L * * *", "field 2 (hour) 'L'"}));

TEST(CronZone, UnknownZoneIsRejected) {
  EXPECT_THROW(TimeZone("Mars/Olympus_Mons"), CronError);
  EXPECT_THROW(TimeZone("../../etc/passwd"), CronError);
}

TEST(CronTime, Iso8601RoundTrip) {
  TimeZone ny(NY);
  std::time_t t = parse_iso8601("2026-07-04T12:00:00", ny);
  EXPECT_EQ(format_iso8601(t, ny), "2026-07-04T12:00:00-04:00");
  EXPECT_EQ(parse_iso8601("2026-07-04T16:00:00Z", ny), t);
  EXPECT_EQ(parse_iso8601("2026-07-04T18:00:00+02:00", ny), t);
  EXPECT_THROW(parse_iso8601("yesterday", ny), CronError);
  EXPECT_THROW(parse_iso8601("2026-02-30T00:00:00", ny), CronError);
}

}  // namespace
}  // namespace clutch::schedule

#include "clutch/config.hpp"
#include "schedule/scheduler.hpp"

TEST(JobOptions, ImmediateAloneIsARunOnceJobAndNothingAtAllIsAnError) {
  using clutch::JobOptions;
  EXPECT_NO_THROW(clutch::schedule::validate_job(JobOptions{.name = "warm", .immediate = true}));
  EXPECT_THROW(clutch::schedule::validate_job(JobOptions{.name = "none"}), clutch::ConfigError);
  EXPECT_THROW(clutch::schedule::validate_job(
                   JobOptions{.name = "both", .cron = "* * * * *", .interval = "1s"}),
               clutch::ConfigError);
  EXPECT_NO_THROW(clutch::schedule::validate_job(JobOptions{.name = "monthly", .interval = "30d"}));
}
