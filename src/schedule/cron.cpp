#include "schedule/cron.hpp"

#include <cctz/civil_time.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <limits>

namespace clutch::schedule {
namespace {

struct FieldSpec {
  const char* name;
  int min, max;
  const char* const* names;  // index i names value min + i, or nullptr
  bool day_field;
};

constexpr const char* kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",  "JUL",
                                       "AUG", "SEP", "OCT", "NOV", "DEC", nullptr};
constexpr const char* kWeekdayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", nullptr};

const std::array<FieldSpec, 6> kSpecs = {{{"seconds", 0, 59, nullptr, false},
                                          {"minute", 0, 59, nullptr, false},
                                          {"hour", 0, 23, nullptr, false},
                                          {"day of month", 1, 31, nullptr, true},
                                          {"month", 1, 12, kMonthNames, false},
                                          {"day of week", 0, 7, kWeekdayNames, true}}};

struct ParsedField {
  std::vector<bool> values;
  // Quartz's day forms (see cron.hpp), collected apart from the plain values.
  std::vector<int> days_before_last, nearest_weekday_to, last_of_weekday;
  std::vector<std::pair<int, int>> nth_weekday;
  bool last_weekday = false;
  bool wildcard = false;  // the field is `*`, `?` or `*/n`
  bool any = false;       // the field is exactly `*` or `?`
};

std::vector<std::string_view> split(std::string_view text, char by) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == by) {
      out.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

ParsedField parse_field(std::string_view field, const FieldSpec& spec, int index,
                        std::string_view whole) {
  auto fail = [&](const std::string& why) -> CronError {
    return CronError(
        fmt::format("cron '{}': field {} ({}) '{}': {}", whole, index, spec.name, field, why));
  };
  auto value_of = [&](std::string_view token) {
    if (token.empty()) throw fail("empty value");
    if (spec.names != nullptr && std::isalpha(static_cast<unsigned char>(token[0]))) {
      std::string upper;
      for (char c : token) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      for (int i = 0; spec.names[i] != nullptr; ++i) {
        if (upper == spec.names[i]) return spec.min + i;
      }
      throw fail(fmt::format("unknown name '{}'", token));
    }
    int value = 0;
    for (char c : token) {
      if (!std::isdigit(static_cast<unsigned char>(c)))
        throw fail(fmt::format("'{}' is not a number", token));
      value = value * 10 + (c - '0');
      if (value > 1000) break;
    }
    if (value < spec.min || value > spec.max) {
      throw fail(fmt::format("{} is out of range {}-{}", token, spec.min, spec.max));
    }
    return value;
  };

  ParsedField out;
  out.values.assign(static_cast<std::size_t>(spec.max + 1), false);
  out.any = field == "*" || (field == "?" && spec.day_field);
  out.wildcard = out.any || field.starts_with("*/");
  if (field == "?" && !spec.day_field) throw fail("'?' is only allowed in the day fields");
  auto number = [&](std::string_view token, int low, int high) {
    int value = 0;
    if (token.empty() || token.size() > 3 || !std::all_of(token.begin(), token.end(), ::isdigit))
      throw fail(fmt::format("'{}' is not a number", token));
    value = std::atoi(std::string(token).c_str());
    if (value < low || value > high)
      throw fail(fmt::format("{} is out of range {}-{}", token, low, high));
    return value;
  };
  bool dom = spec.name == std::string_view("day of month");
  bool dow = spec.name == std::string_view("day of week");
  for (std::string_view part : split(field, ',')) {
    if (part.empty()) throw fail("empty list item");
    if (dom && (part == "L" || part == "l")) {
      out.days_before_last.push_back(0);
      continue;
    }
    if (dom && part.size() > 2 && (part[0] == 'L' || part[0] == 'l') && part[1] == '-') {
      out.days_before_last.push_back(number(part.substr(2), 0, 30));
      continue;
    }
    if (dom && (part == "LW" || part == "lw")) {
      out.last_weekday = true;
      continue;
    }
    if (dom && part.size() > 1 && (part.back() == 'W' || part.back() == 'w')) {
      out.nearest_weekday_to.push_back(number(part.substr(0, part.size() - 1), 1, 31));
      continue;
    }
    if (dow && part.size() > 1 && (part.back() == 'L' || part.back() == 'l')) {
      out.last_of_weekday.push_back(value_of(part.substr(0, part.size() - 1)) % 7);
      continue;
    }
    if (dow && part.find('#') != std::string_view::npos) {
      auto hash = part.find('#');
      int day = value_of(part.substr(0, hash)) % 7;
      out.nth_weekday.emplace_back(day, number(part.substr(hash + 1), 1, 5));
      continue;
    }
    auto slash = split(part, '/');
    if (slash.size() > 2) throw fail("more than one '/'");
    int step = 1;
    if (slash.size() == 2) {
      if (slash[1].empty() || !std::all_of(slash[1].begin(), slash[1].end(), ::isdigit)) {
        throw fail(fmt::format("step '{}' is not a number", slash[1]));
      }
      step = std::atoi(std::string(slash[1]).c_str());
      if (step < 1 || step > spec.max)
        throw fail(fmt::format("step {} is out of range 1-{}", step, spec.max));
    }
    std::string_view base = slash[0];
    int low, high;
    if (base == "*" || (base == "?" && spec.day_field)) {
      low = spec.min;
      high = spec.name == std::string_view("day of week") ? 6 : spec.max;
    } else {
      auto dash = split(base, '-');
      if (dash.size() > 2) throw fail("more than one '-'");
      low = value_of(dash[0]);
      high = dash.size() == 2 ? value_of(dash[1]) : (slash.size() == 2 ? spec.max : low);
      if (high < low) throw fail(fmt::format("range {} goes backwards", base));
    }
    for (int v = low; v <= high; v += step) out.values[static_cast<std::size_t>(v)] = true;
  }
  return out;
}

template <std::size_t N>
void copy_bits(const ParsedField& field, std::bitset<N>& bits) {
  for (std::size_t i = 0; i < field.values.size() && i < N; ++i) bits[i] = field.values[i];
}

// Civil (wall-clock) date-time arithmetic, independent of any zone: cctz's civil types, whose
// constructors normalize (October 32 -> November 1), so "the next day" is civil_day(c) + 1.
using Civil = cctz::civil_second;
using Instant = cctz::time_point<cctz::seconds>;

const Civil kEpoch(1970, 1, 1, 0, 0, 0);

long long seconds_of(const Civil& c) {
  return c - kEpoch;
}
Civil civil_at(long long seconds) {
  return kEpoch + seconds;
}
Instant instant_of(long long t) {
  return Instant(cctz::seconds(t));
}
long long seconds_of(const Instant& t) {
  return t.time_since_epoch().count();
}

bool leap(long long y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}
int days_in_month(long long y, int m) {
  static constexpr int days[] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : days[m];
}
// 0 = Sunday.
int weekday(const Civil& c) {
  return (static_cast<int>(cctz::get_weekday(cctz::civil_day(c))) + 1) % 7;
}

// Quartz's day-of-month forms: L, L-n, nW, LW.
bool special_dom(const CronExpression& e, const Civil& c) {
  int last = days_in_month(c.year(), c.month());
  for (int before : e.days_before_last) {
    if (c.day() == last - before) return true;
  }
  auto weekday_of_day = [&](int day) { return weekday(Civil(c.year(), c.month(), day)); };
  auto weekday_near = [&](int day) {
    day = std::min(day, last);
    int wd = weekday_of_day(day);
    if (wd == 6) return day == 1 ? 3 : day - 1;           // Saturday: Friday, or Monday the 3rd
    if (wd == 0) return day == last ? day - 2 : day + 1;  // Sunday: Monday, or Friday
    return day;
  };
  for (int day : e.nearest_weekday_to) {
    if (c.day() == weekday_near(day)) return true;
  }
  if (e.last_weekday) {
    int wd = weekday_of_day(last);
    int last_weekday = wd == 6 ? last - 1 : wd == 0 ? last - 2 : last;
    if (c.day() == last_weekday) return true;
  }
  return false;
}

// Quartz's day-of-week forms: 5L (the last Friday), 1#2 (the second Monday).
bool special_dow(const CronExpression& e, const Civil& c) {
  int wd = weekday(c);
  for (int day : e.last_of_weekday) {
    if (wd == day && c.day() + 7 > days_in_month(c.year(), c.month())) return true;
  }
  for (const auto& [day, nth] : e.nth_weekday) {
    if (wd == day && (c.day() - 1) / 7 + 1 == nth) return true;
  }
  return false;
}

bool day_matches(const CronExpression& e, const Civil& c) {
  bool dom = e.days_of_month[static_cast<std::size_t>(c.day())] || special_dom(e, c);
  bool dow = e.days_of_week[static_cast<std::size_t>(weekday(c))] || special_dow(e, c);
  if (e.dom_restricted && e.dow_restricted) return dom || dow;
  if (e.dom_restricted) return dom;
  if (e.dow_restricted) return dow;
  return true;
}

// The first set bit at or after `from`, or -1.
template <std::size_t N>
int first_set_from(const std::bitset<N>& bits, int from) {
  for (auto i = static_cast<std::size_t>(from); i < N; ++i) {
    if (bits[i]) return static_cast<int>(i);
  }
  return -1;
}

// The first civil time in [c, limit] that matches, or nullopt. Field by field, largest first: a
// field that cannot match moves to the next value of the field above it (with carry), and a field
// that can jumps straight to its next allowed value, so a call costs a few steps per field and at
// most one step per day for the day rules, never one per second.
std::optional<Civil> next_civil_match(const CronExpression& e, Civil c, const Civil& limit) {
  // Each turn moves c forward by at least a second; 10 years of days is ~3,700 turns.
  for (int turn = 0; turn < 100000 && c <= limit; ++turn) {
    if (!e.months[static_cast<std::size_t>(c.month())]) {
      int month = first_set_from(e.months, c.month());
      c = month > 0 ? Civil(c.year(), month, 1) : Civil(c.year() + 1, 1, 1);
      continue;
    }
    if (!day_matches(e, c)) {
      c = Civil(cctz::civil_day(c) + 1);
      continue;
    }
    int hour = first_set_from(e.hours, c.hour());
    if (hour < 0) {
      c = Civil(cctz::civil_day(c) + 1);
      continue;
    }
    if (hour != c.hour()) c = Civil(c.year(), c.month(), c.day(), hour, 0, 0);
    int minute = first_set_from(e.minutes, c.minute());
    if (minute < 0) {
      c = Civil(cctz::civil_hour(c) + 1);
      continue;
    }
    if (minute != c.minute()) c = Civil(c.year(), c.month(), c.day(), c.hour(), minute, 0);
    int second = first_set_from(e.seconds, c.second());
    if (second < 0) {
      c = Civil(cctz::civil_minute(c) + 1);
      continue;
    }
    c = Civil(c.year(), c.month(), c.day(), c.hour(), c.minute(), second);
    return c <= limit ? std::optional<Civil>(c) : std::nullopt;
  }
  return std::nullopt;
}

std::tm tm_of(const Civil& c) {
  std::tm tm{};
  tm.tm_year = static_cast<int>(c.year() - 1900);
  tm.tm_mon = c.month() - 1;
  tm.tm_mday = c.day();
  tm.tm_hour = c.hour();
  tm.tm_min = c.minute();
  tm.tm_sec = c.second();
  tm.tm_isdst = -1;
  return tm;
}
Civil civil_of(const std::tm& tm) {
  return Civil(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

}  // namespace

CronExpression parse_cron(std::string_view text) {
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    std::size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) fields.push_back(text.substr(start, i - start));
  }
  if (fields.size() != 5 && fields.size() != 6) {
    throw CronError(
        fmt::format("cron '{}': expected 5 fields (minute hour day month weekday) or 6 "
                    "(seconds first), got {}",
                    text, fields.size()));
  }
  CronExpression e;
  e.text = std::string(text);
  e.has_seconds = fields.size() == 6;
  std::size_t first_spec = e.has_seconds ? 0 : 1;
  std::vector<ParsedField> parsed;
  for (std::size_t f = 0; f < fields.size(); ++f) {
    parsed.push_back(parse_field(fields[f], kSpecs[first_spec + f], static_cast<int>(f + 1), text));
  }
  std::size_t at = 0;
  if (e.has_seconds)
    copy_bits(parsed[at++], e.seconds);
  else
    e.seconds[0] = true;
  copy_bits(parsed[at++], e.minutes);
  e.hour_wildcard = parsed[at].wildcard;
  copy_bits(parsed[at++], e.hours);
  e.dom_restricted = !parsed[at].any;
  e.days_before_last = parsed[at].days_before_last;
  e.nearest_weekday_to = parsed[at].nearest_weekday_to;
  e.last_weekday = parsed[at].last_weekday;
  copy_bits(parsed[at++], e.days_of_month);
  copy_bits(parsed[at++], e.months);
  const ParsedField& dow = parsed[at];
  e.dow_restricted = !dow.any;
  e.last_of_weekday = dow.last_of_weekday;
  e.nth_weekday = dow.nth_weekday;
  for (std::size_t d = 0; d <= 7; ++d) {
    if (dow.values[d]) e.days_of_week[d % 7] = true;
  }
  return e;
}

TimeZone::TimeZone(std::string name) : name_(std::move(name)) {
  if (name_.empty()) {
    zone_ = cctz::local_time_zone();
    return;
  }
  // cctz reads the zone's file (under TZDIR, else /usr/share/zoneinfo) once and caches it;
  // a name that climbs out of that folder is not a zone.
  if (name_.find("..") != std::string::npos || name_.front() == '/' ||
      !cctz::load_time_zone(name_, &zone_)) {
    throw CronError(
        fmt::format("unknown time zone '{}' (expected an IANA name such as "
                    "Europe/Berlin; is the tzdata package installed?)",
                    name_));
  }
}

std::tm TimeZone::to_local(std::time_t instant) const {
  cctz::time_zone::absolute_lookup at = zone_.lookup(instant_of(instant));
  std::tm tm = tm_of(at.cs);
  tm.tm_isdst = at.is_dst ? 1 : 0;
  tm.tm_gmtoff = at.offset;
  tm.tm_wday = weekday(at.cs);
  return tm;
}

std::vector<std::time_t> TimeZone::from_local(const std::tm& local) const {
  cctz::time_zone::civil_lookup found = zone_.lookup(civil_of(local));
  switch (found.kind) {
    case cctz::time_zone::civil_lookup::UNIQUE:
      return {static_cast<std::time_t>(seconds_of(found.pre))};
    case cctz::time_zone::civil_lookup::REPEATED:
      return {static_cast<std::time_t>(seconds_of(found.pre)),
              static_cast<std::time_t>(seconds_of(found.post))};
    case cctz::time_zone::civil_lookup::SKIPPED:
      break;
  }
  return {};
}

std::time_t TimeZone::shift_over_gap(const std::tm& local) const {
  // cctz's `pre` for a skipped time applies the offset in force before the transition, which
  // lands as far past the gap as the time was into it (02:30 on a 02:00->03:00 night: 03:30).
  return static_cast<std::time_t>(seconds_of(zone_.lookup(civil_of(local)).pre));
}

// The fire times are walked one stretch of constant UTC offset at a time (a zone has about two
// a year): inside a stretch, wall time and instants move together, so the first civil match is
// the first fire. At the stretch's edges the DST rules of cron.hpp apply:
// - after a spring-forward, the wall times the gap swallowed fire shifted by the gap, at the
//   start of the new stretch;
// - after a fall-back, the repeated wall times fire again only for a wildcard hour; a fixed hour
//   fired in the stretch before.
// So a per-second expression costs the same as a daily one: a few lookups, no scan.
std::optional<std::time_t> next_fire(const CronExpression& cron, const TimeZone& zone,
                                     std::time_t after) {
  const cctz::time_zone& tz = zone.zone_;
  long long t = static_cast<long long>(after) + 1;  // the earliest instant that may fire
  const long long last_year = tz.lookup(instant_of(t)).cs.year() + 10;
  const Civil year_end(last_year, 12, 31, 23, 59, 59);
  std::optional<long long> best;
  // Each turn is one stretch; 10 years hold ~20 of them in zones with DST.
  for (int stretch = 0; stretch < 1000; ++stretch) {
    cctz::time_zone::absolute_lookup here = tz.lookup(instant_of(t));
    if (here.cs > year_end) break;
    const long long offset = here.offset;
    cctz::time_zone::civil_transition next{};
    bool ends = tz.next_transition(instant_of(t), &next);
    // The stretch holds the instants [t, end): wall times [here.cs, next.from).
    long long end = ends ? seconds_of(next.from) - offset : std::numeric_limits<long long>::max();
    Civil wall_limit = ends ? std::min(next.from - 1, year_end) : year_end;

    // The transition that began this stretch, if t is still within reach of its edge.
    cctz::time_zone::civil_transition began{};
    if (tz.prev_transition(instant_of(t + 1), &began)) {
      long long at = seconds_of(began.to) - offset;  // the instant of that transition
      long long jump = began.to - began.from;        // > 0 spring-forward, < 0 fall-back
      if (jump > 0 && t < at + jump) {
        // Wall times [from, to) never showed; each fires at `at` plus how far it was into the gap.
        Civil from = std::max(began.from, began.from + (t - at));
        if (auto gap_match = next_civil_match(cron, from, began.to - 1)) {
          long long fire = at + (*gap_match - began.from);
          if (!best || fire < *best) best = fire;
        }
      }
    }

    Civil from = here.cs;
    if (!cron.hour_wildcard) {
      // Wall times this stretch repeats from the one before fired there (a fixed hour fires once).
      cctz::time_zone::civil_lookup wall = tz.lookup(from);
      if (wall.kind == cctz::time_zone::civil_lookup::REPEATED && seconds_of(wall.post) == t) {
        from = civil_at(seconds_of(wall.trans) + (seconds_of(from) - seconds_of(wall.pre)));
      }
    }
    if (auto match = next_civil_match(cron, from, wall_limit)) {
      long long fire = seconds_of(*match) - offset;
      if (!best || fire < *best) best = fire;
    }
    // Every later stretch fires at or after `end`.
    if ((best && *best < end) || !ends) break;
    t = end;
  }
  if (!best) return std::nullopt;
  return static_cast<std::time_t>(*best);
}

bool matches(const CronExpression& cron, const std::tm& local) {
  Civil c = civil_of(local);
  return next_civil_match(cron, c, c).has_value();
}

std::string format_iso8601(std::time_t instant, const TimeZone& zone) {
  std::tm tm = zone.to_local(instant);
  long off = tm.tm_gmtoff;
  char sign = off < 0 ? '-' : '+';
  off = std::labs(off);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{:02}:{:02}", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off / 3600,
                     (off % 3600) / 60);
}

std::time_t parse_iso8601(std::string_view text, const TimeZone& zone) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, n = 0;
  std::string str(text);
  if (std::sscanf(str.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3) {
    throw CronError(
        fmt::format("bad time '{}': expected ISO-8601 such as 2026-03-08T01:30:00", text));
  }
  std::string_view rest = text.substr(static_cast<std::size_t>(n));
  if (!rest.empty() && (rest[0] == 'T' || rest[0] == ' ')) {
    int used = 0;
    std::string r(rest.substr(1));
    int got = std::sscanf(r.c_str(), "%2d:%2d%n:%2d%n", &h, &mi, &used, &s, &used);
    if (got < 2) throw CronError(fmt::format("bad time '{}': expected HH:MM after the date", text));
    rest = rest.substr(1 + static_cast<std::size_t>(used));
  }
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59) {
    throw CronError(fmt::format("bad time '{}': no such date or time", text));
  }
  Civil c(y, mo, d, h, mi, s);
  std::tm tm = tm_of(c);
  if (rest.empty()) {
    auto instants = zone.from_local(tm);
    return instants.empty() ? zone.shift_over_gap(tm) : instants.front();
  }
  long offset = 0;
  if (rest == "Z") {
    offset = 0;
  } else {
    int oh = 0, om = 0;
    std::string r(rest);
    if ((r[0] != '+' && r[0] != '-') || std::sscanf(r.c_str() + 1, "%2d:%2d", &oh, &om) != 2) {
      throw CronError(fmt::format("bad time '{}': expected an offset like Z or +01:00", text));
    }
    offset = (oh * 3600L + om * 60L) * (r[0] == '-' ? -1 : 1);
  }
  return static_cast<std::time_t>(seconds_of(c) - offset);
}

}  // namespace clutch::schedule
