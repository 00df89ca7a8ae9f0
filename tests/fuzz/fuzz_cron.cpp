// The cron parser on arbitrary text: an expression is either rejected with CronError or yields
// fire times that move forward, in UTC and in a zone with DST.
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string_view>

#include "schedule/cron.hpp"

using namespace clutch::schedule;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size > 256) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    CronExpression cron = parse_cron(text);
    static const TimeZone utc("UTC"), berlin("Europe/Berlin");
    for (const TimeZone* zone : {&utc, &berlin}) {
      std::time_t t = 1774567800;  // 2026-03-26, days before a DST change
      for (int i = 0; i < 4; ++i) {
        auto next = next_fire(cron, *zone, t);
        if (!next) break;
        if (*next <= t) __builtin_trap();
        t = *next;
      }
    }
  } catch (const CronError&) {
  }
  return 0;
}
