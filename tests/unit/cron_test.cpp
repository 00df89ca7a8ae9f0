#include "schedule/cron.hpp"

#include <gtest/gtest.h>

#include "cron_cases.hpp"

#include <fmt/format.h>

#include <atomic>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace clutch::schedule {
namespace {

using cron_cases::BER;
using cron_cases::Case;
using cron_cases::NY;
using cron_cases::U;

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

INSTANTIATE_TEST_SUITE_P(Expressions, CronNext, ::testing::ValuesIn(cron_cases::all()));

TEST(CronNext, ImpossibleDateNeverFires) {
  TimeZone utc("UTC");
  EXPECT_FALSE(next_fire(parse_cron("0 0 30 2 *"), utc, 0));
  EXPECT_FALSE(next_fire(parse_cron("0 0 31 4,6,9,11 *"), utc, 0));
}

// The rules of cron.hpp spelled out second by second, as the reference the fast walk must equal:
// an instant fires if its wall time matches and it is that wall time's only instant, its first
// (fall-back), or its second under a wildcard hour; and a matching wall time that a
// spring-forward swallowed fires at the instant shift_over_gap gives it.
std::optional<std::time_t> next_fire_by_scanning(const CronExpression& cron, const TimeZone& zone,
                                                 std::time_t after, std::time_t horizon) {
  std::optional<std::time_t> best;
  for (std::time_t t = after + 1; t <= horizon && !best; ++t) {
    std::tm local = zone.to_local(t);
    if (!matches(cron, local)) continue;
    std::vector<std::time_t> instants = zone.from_local(local);
    if (instants.size() == 1 || t == instants.front() || cron.hour_wildcard) best = t;
  }
  // Gap images: every wall time from two hours before `after`'s to two hours past the horizon's.
  std::time_t first_wall = after + zone.to_local(after).tm_gmtoff - 2 * 3600;
  std::time_t last_wall = horizon + zone.to_local(horizon).tm_gmtoff + 2 * 3600;
  for (std::time_t wall = first_wall; wall <= last_wall; ++wall) {
    std::tm local{};
    gmtime_r(&wall, &local);  // the wall time's fields, read as if UTC
    if (!zone.from_local(local).empty() || !matches(cron, local)) continue;
    std::time_t shifted = zone.shift_over_gap(local);
    if (shifted > after && shifted <= horizon && (!best || shifted < *best)) best = shifted;
  }
  return best;
}

// Random expressions around DST changes (New York, Berlin, and Lord Howe's half-hour shift),
// checked against the second-by-second reference: fails if the walk misses a gap image, fires a
// fixed hour twice at a fall-back, or skips a stretch.
TEST(CronNext, EqualsTheSecondBySecondRulesAroundDaylightSavingChanges) {
  const char* seconds[] = {"0", "*/20", "30", "*"};
  const char* minutes[] = {"0", "*/7", "30", "*", "0-10", "45"};
  const char* hours[] = {"*", "2", "1-3", "*/2", "3", "0,2"};
  const char* weekdays[] = {"*", "SUN", "1-5"};
  struct Edge {
    const char* zone;
    const char* at;  // a DST change, in UTC
  };
  const Edge edges[] = {{NY, "2026-03-08T07:00:00Z"},
                        {NY, "2026-11-01T06:00:00Z"},
                        {BER, "2026-03-29T01:00:00Z"},
                        {BER, "2026-10-25T01:00:00Z"},
                        {"Australia/Lord_Howe", "2026-04-04T15:00:00Z"},
                        {"Australia/Lord_Howe", "2026-10-03T15:30:00Z"}};
  std::mt19937 random(20261202);
  for (int trial = 0; trial < 24; ++trial) {
    std::string text = fmt::format("{} {} {} * * {}", seconds[random() % 4], minutes[random() % 6],
                                   hours[random() % 6], weekdays[random() % 3]);
    CronExpression cron = parse_cron(text);
    const Edge& edge = edges[random() % 6];
    TimeZone zone(edge.zone);
    std::time_t change = parse_iso8601(edge.at, zone);
    std::time_t after = change - static_cast<std::time_t>(random() % (4 * 3600));
    std::time_t horizon = change + 3 * 3600;
    for (int step = 0; step < 4; ++step) {
      auto expected = next_fire_by_scanning(cron, zone, after, horizon);
      auto got = next_fire(cron, zone, after);
      ASSERT_TRUE(got.has_value()) << text;
      if (!expected) {
        EXPECT_GT(*got, horizon) << text << " in " << edge.zone;
        break;
      }
      ASSERT_EQ(format_iso8601(*got, zone), format_iso8601(*expected, zone))
          << "'" << text << "' in " << edge.zone << " after " << format_iso8601(after, zone);
      after = *got;
    }
  }
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

// Issue 22.1: conversions set TZ and called tzset, so a thread beside them (the agent's broker
// threads, and their log lines' time stamps) saw the job's zone as the process's own.
TEST(CronZone, ConvertingInAZoneLeavesTheProcessLocalTimeAlone) {
  setenv("TZ", "UTC", 1);
  tzset();
  std::atomic<bool> done{false};
  std::atomic<int> foreign{0};
  std::thread sampler([&] {
    std::time_t at = 1780000000;
    for (int i = 0; i < 2000000 && !done; ++i) {
      std::tm tm{};
      localtime_r(&at, &tm);
      if (tm.tm_gmtoff != 0) ++foreign;
    }
  });
  TimeZone tokyo("Asia/Tokyo");
  CronExpression cron = parse_cron("*/1 * * * * *");
  std::time_t t = 1780000000;
  for (int i = 0; i < 5; ++i) t = *next_fire(cron, tokyo, t);
  done = true;
  sampler.join();
  EXPECT_EQ(foreign.load(), 0) << "the process's local time left UTC during a conversion";
  EXPECT_STREQ(std::getenv("TZ"), "UTC");
  unsetenv("TZ");
  tzset();
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
