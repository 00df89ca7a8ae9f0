#include "schedule/cron.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <filesystem>

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

// Civil (wall-clock) date-time arithmetic, independent of any zone.
struct Civil {
  int year, month, day, hour, minute, second;
};

bool leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}
int days_in_month(int y, int m) {
  static constexpr int days[] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : days[m];
}
// 0 = Sunday (Sakamoto's method).
int weekday(int y, int m, int d) {
  static constexpr int t[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
  if (m < 3) y -= 1;
  return (y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7;
}

Civil civil_of(const std::tm& tm) {
  return {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
}
std::tm tm_of(const Civil& c) {
  std::tm tm{};
  tm.tm_year = c.year - 1900;
  tm.tm_mon = c.month - 1;
  tm.tm_mday = c.day;
  tm.tm_hour = c.hour;
  tm.tm_min = c.minute;
  tm.tm_sec = c.second;
  tm.tm_isdst = -1;
  return tm;
}
long long civil_seconds(const Civil& c) {
  std::tm tm = tm_of(c);
  return static_cast<long long>(timegm(&tm));
}

void next_second(Civil& c) {
  if (++c.second < 60) return;
  c.second = 0;
  if (++c.minute < 60) return;
  c.minute = 0;
  if (++c.hour < 24) return;
  c.hour = 0;
  if (++c.day <= days_in_month(c.year, c.month)) return;
  c.day = 1;
  if (++c.month <= 12) return;
  c.month = 1;
  ++c.year;
}

// Quartz's day-of-month forms: L, L-n, nW, LW.
bool special_dom(const CronExpression& e, const Civil& c) {
  int last = days_in_month(c.year, c.month);
  for (int before : e.days_before_last) {
    if (c.day == last - before) return true;
  }
  auto weekday_near = [&](int day) {
    day = std::min(day, last);
    int wd = weekday(c.year, c.month, day);
    if (wd == 6) return day == 1 ? 3 : day - 1;           // Saturday: Friday, or Monday the 3rd
    if (wd == 0) return day == last ? day - 2 : day + 1;  // Sunday: Monday, or Friday
    return day;
  };
  for (int day : e.nearest_weekday_to) {
    if (c.day == weekday_near(day)) return true;
  }
  if (e.last_weekday) {
    int wd = weekday(c.year, c.month, last);
    int last_weekday = wd == 6 ? last - 1 : wd == 0 ? last - 2 : last;
    if (c.day == last_weekday) return true;
  }
  return false;
}

// Quartz's day-of-week forms: 5L (the last Friday), 1#2 (the second Monday).
bool special_dow(const CronExpression& e, const Civil& c) {
  int wd = weekday(c.year, c.month, c.day);
  for (int day : e.last_of_weekday) {
    if (wd == day && c.day + 7 > days_in_month(c.year, c.month)) return true;
  }
  for (const auto& [day, nth] : e.nth_weekday) {
    if (wd == day && (c.day - 1) / 7 + 1 == nth) return true;
  }
  return false;
}

bool day_matches(const CronExpression& e, const Civil& c) {
  bool dom = e.days_of_month[static_cast<std::size_t>(c.day)] || special_dom(e, c);
  bool dow = e.days_of_week[static_cast<std::size_t>(weekday(c.year, c.month, c.day))] ||
             special_dow(e, c);
  if (e.dom_restricted && e.dow_restricted) return dom || dow;
  if (e.dom_restricted) return dom;
  if (e.dow_restricted) return dow;
  return true;
}

// The first civil time at or after `c` that matches, skipping whole months, days, hours and
// minutes that cannot; nullopt past `last_year`.
std::optional<Civil> next_civil_match(const CronExpression& e, Civil c, int last_year) {
  while (c.year <= last_year) {
    if (!e.months[static_cast<std::size_t>(c.month)]) {
      c = {c.month == 12 ? c.year + 1 : c.year, c.month == 12 ? 1 : c.month + 1, 1, 0, 0, 0};
      continue;
    }
    if (!day_matches(e, c)) {
      c.hour = 23, c.minute = 59, c.second = 59;
      next_second(c);
      continue;
    }
    if (!e.hours[static_cast<std::size_t>(c.hour)]) {
      c.minute = 59, c.second = 59;
      next_second(c);
      continue;
    }
    if (!e.minutes[static_cast<std::size_t>(c.minute)]) {
      c.second = 59;
      next_second(c);
      continue;
    }
    if (!e.seconds[static_cast<std::size_t>(c.second)]) {
      next_second(c);
      continue;
    }
    return c;
  }
  return std::nullopt;
}

// Switches the process's zone for the duration of a conversion (single-threaded processes).
class ZoneScope {
 public:
  explicit ZoneScope(const std::string& name) : active_(!name.empty()) {
    if (!active_) return;
    if (const char* old = std::getenv("TZ")) saved_ = old, had_ = true;
    setenv("TZ", name.c_str(), 1);
    tzset();
  }
  ~ZoneScope() {
    if (!active_) return;
    if (had_)
      setenv("TZ", saved_.c_str(), 1);
    else
      unsetenv("TZ");
    tzset();
  }

 private:
  bool active_, had_ = false;
  std::string saved_;
};

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
  if (name_.empty()) return;
  const char* dir = std::getenv("TZDIR");
  std::filesystem::path file =
      std::filesystem::path(dir != nullptr ? dir : "/usr/share/zoneinfo") / name_;
  if (name_.find("..") != std::string::npos || name_.front() == '/' ||
      !std::filesystem::is_regular_file(file)) {
    throw CronError(
        fmt::format("unknown time zone '{}' (expected an IANA name such as "
                    "Europe/Berlin; is the tzdata package installed?)",
                    name_));
  }
}

std::tm TimeZone::to_local(std::time_t instant) const {
  ZoneScope scope(name_);
  std::tm tm{};
  localtime_r(&instant, &tm);
  return tm;
}

std::vector<std::time_t> TimeZone::from_local(const std::tm& local) const {
  ZoneScope scope(name_);
  std::vector<std::time_t> out;
  for (int isdst : {0, 1}) {
    std::tm tm = local;
    tm.tm_isdst = isdst;
    std::time_t t = mktime(&tm);
    std::tm back{};
    localtime_r(&t, &back);
    if (back.tm_year == local.tm_year && back.tm_mon == local.tm_mon &&
        back.tm_mday == local.tm_mday && back.tm_hour == local.tm_hour &&
        back.tm_min == local.tm_min && back.tm_sec == local.tm_sec &&
        std::find(out.begin(), out.end(), t) == out.end()) {
      out.push_back(t);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::time_t TimeZone::shift_over_gap(const std::tm& local) const {
  std::tm copy = local;
  std::time_t as_utc = timegm(&copy);
  // The offset in force before the transition, applied to the missing wall time, lands as far
  // past the gap as the time was into it.
  long offset_before = to_local(as_utc - 14 * 3600).tm_gmtoff;
  return as_utc - offset_before;
}

std::optional<std::time_t> next_fire(const CronExpression& cron, const TimeZone& zone,
                                     std::time_t after) {
  // Start a few hours early in wall-clock terms: at a fall-back the same wall time comes twice,
  // so a later instant can carry an earlier wall time.
  constexpr long long kSlack = 3 * 3600;
  Civil from = civil_of(zone.to_local(after - kSlack));
  int last_year = from.year + 10;
  next_second(from);
  std::optional<std::time_t> best;
  long long best_civil = 0;
  for (int guard = 0; guard < 100000; ++guard) {
    std::optional<Civil> match = next_civil_match(cron, from, last_year);
    if (!match) break;
    long long civil = civil_seconds(*match);
    if (best && civil > best_civil + kSlack) break;
    std::tm tm = tm_of(*match);
    std::vector<std::time_t> instants = zone.from_local(tm);
    if (instants.empty()) instants.push_back(zone.shift_over_gap(tm));
    // A fixed hour fires once at a fall-back; a wildcard hour fires in both real hours.
    if (instants.size() == 2 && !cron.hour_wildcard) instants.resize(1);
    for (std::time_t t : instants) {
      if (t > after && (!best || t < *best)) {
        best = t;
        best_civil = civil;
      }
    }
    from = *match;
    next_second(from);
  }
  return best;
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
  Civil c{y, mo, d, h, mi, s};
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59) {
    throw CronError(fmt::format("bad time '{}': no such date or time", text));
  }
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
  return timegm(&tm) - offset;
}

}  // namespace clutch::schedule
