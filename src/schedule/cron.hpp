// Cron expressions: parsing (pure) and next fire times in a time zone.
//
// Five fields (minute hour day-of-month month day-of-week) or six (seconds first). Each field takes
// `*`, numbers, lists `a,b`, ranges `a-b`, steps `*/n`, `a-b/n`, `a/n`; months JAN-DEC and weekdays
// SUN-SAT by name (0 and 7 are Sunday); `?` means "any" in the day fields. When both day fields are
// restricted a day matches if either does (classic cron).
// Quartz's day forms, in lists too: day of month `L` (the last day), `L-3` (three days before it),
// `15W` (the weekday nearest the 15th, within the month), `LW` (the last weekday); day of week
// `5L` (the month's last Friday) and `1#2` (its second Monday).
//
// Daylight saving time: a time that falls in a spring-forward gap fires shifted by the gap (02:30
// on a 02:00->03:00 night fires at 03:30); a fixed time repeated at fall-back fires once (the first
// time); a wildcard hour fires every real hour, so both 01:30s of a fall-back night fire.
#pragma once

#include <cctz/time_zone.h>

#include <bitset>
#include <ctime>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace clutch::schedule {

class CronError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct CronExpression {
  std::bitset<60> seconds, minutes;
  std::bitset<24> hours;
  std::bitset<32> days_of_month;  // 1..31
  std::bitset<13> months;         // 1..12
  std::bitset<7> days_of_week;    // 0..6, Sunday = 0
  bool dom_restricted = false, dow_restricted = false;
  std::vector<int> days_before_last;             // L (0), L-3 (3)
  std::vector<int> nearest_weekday_to;           // 15W
  bool last_weekday = false;                     // LW
  std::vector<int> last_of_weekday;              // 5L: weekday 0..6
  std::vector<std::pair<int, int>> nth_weekday;  // 1#2: (weekday 0..6, 1..5)
  bool hour_wildcard = true;  // `*` or a step over all hours: fires in every real hour
  bool has_seconds = false;
  std::string text;
};

// Throws CronError naming the field and the bad part ("field 3 (day of month) '32': ...").
CronExpression parse_cron(std::string_view text);

// A time zone's rules (IANA name such as "Europe/Berlin", or "" for the local zone), read by
// cctz from the tzdata files: no conversion touches the process's TZ, so it is safe beside the
// agent's broker threads and leaves the log's time stamps alone.
class TimeZone {
 public:
  // Throws CronError for an unknown zone.
  explicit TimeZone(std::string name = "");
  const std::string& name() const { return name_; }
  // The wall-clock time (tm_gmtoff and tm_isdst set) at an instant.
  std::tm to_local(std::time_t instant) const;
  // The instants whose wall-clock time is `local` (fields year..second): none in a gap, two in a
  // fall-back repeat (earlier first).
  std::vector<std::time_t> from_local(const std::tm& local) const;
  // The instant for a wall-clock time in a gap: shifted forward by the gap.
  std::time_t shift_over_gap(const std::tm& local) const;

 private:
  friend std::optional<std::time_t> next_fire(const CronExpression&, const TimeZone&, std::time_t);
  std::string name_;
  cctz::time_zone zone_;
};

// Whether a wall-clock time (fields year..second) matches every field and day rule.
bool matches(const CronExpression& cron, const std::tm& local);

// The first fire time strictly after `after`, or nullopt if the expression never fires within
// the next 10 years (e.g. "0 0 30 2 *").
std::optional<std::time_t> next_fire(const CronExpression& cron, const TimeZone& zone,
                                     std::time_t after);

// "2026-03-08T03:30:00-04:00"
std::string format_iso8601(std::time_t instant, const TimeZone& zone);
// "2026-03-08T01:00:00", "...Z" or "...+01:00"; without an offset read in `zone`. Throws CronError.
std::time_t parse_iso8601(std::string_view text, const TimeZone& zone);

}  // namespace clutch::schedule
