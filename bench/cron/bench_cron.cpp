// next_fire's cost, in ns per call, on every case of tests/unit/cron_cases.hpp (the expressions
// the tests prove right), beside what one zone conversion costs in the same run: cctz's lookup
// of a wall time (what next_fire is built on) and glibc's localtime_r.
// Prints one JSON object; bench/cron/run makes the table.
#include <cctz/civil_time.h>
#include <cctz/time_zone.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <string>
#include <vector>

#include "cron_cases.hpp"
#include "schedule/cron.hpp"

using namespace clutch::schedule;
using Clock = std::chrono::steady_clock;

namespace {

// Median over `rounds` of the mean ns per call of `calls` calls of `fn`.
template <typename Fn>
double median_ns(int rounds, int calls, Fn&& fn) {
  std::vector<double> per_call;
  for (int r = 0; r < rounds; ++r) {
    auto start = Clock::now();
    for (int i = 0; i < calls; ++i) fn(i);
    per_call.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
                       calls);
  }
  std::sort(per_call.begin(), per_call.end());
  return per_call[per_call.size() / 2];
}

volatile long long sink = 0;

}  // namespace

int main() {
  struct Row {
    std::string what;
    double ns;
  };
  std::vector<Row> rows;
  for (const auto& c : cron_cases::all()) {
    TimeZone zone(c.zone);
    CronExpression cron = parse_cron(c.expression);
    std::time_t from = parse_iso8601(c.from, zone);
    double ns = median_ns(7, 200, [&](int i) {
      auto next = next_fire(cron, zone, from + i);
      sink += next ? *next : 0;
    });
    rows.push_back({fmt::format("{} ({})", c.expression, c.zone), ns});
  }
  std::vector<double> all;
  for (const auto& r : rows) all.push_back(r.ns);
  std::sort(all.begin(), all.end());
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.ns > b.ns; });

  cctz::time_zone tokyo;
  cctz::load_time_zone("Asia/Tokyo", &tokyo);
  double lookup_ns = median_ns(7, 100000, [&](int i) {
    sink += tokyo.lookup(cctz::civil_second(2026, 7, 1, 0, 0, i)).pre.time_since_epoch().count();
  });
  double localtime_ns = median_ns(7, 100000, [&](int i) {
    std::time_t t = 1780000000 + i;
    std::tm tm{};
    localtime_r(&t, &tm);
    sink += tm.tm_sec;
  });
  fmt::print("{{\"cases\":{},\"median_ns\":{:.0f},\"p90_ns\":{:.0f},\"max_ns\":{:.0f},", all.size(),
             all[all.size() / 2], all[all.size() * 9 / 10], all.back());
  fmt::print("\"lookup_ns\":{:.0f},\"localtime_ns\":{:.0f},\"slowest\":[", lookup_ns, localtime_ns);
  for (std::size_t i = 0; i < 5 && i < rows.size(); ++i) {
    fmt::print("{}[\"{}\",{:.0f}]", i ? "," : "", rows[i].what, rows[i].ns);
  }
  fmt::print("]}}\n");
}
