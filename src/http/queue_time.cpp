#include "http/queue_time.hpp"

#include <charconv>
#include <cstdint>

namespace clutch::http {

std::optional<std::chrono::microseconds> queue_age_from_header(
    std::string_view value, std::chrono::system_clock::time_point now) {
  using std::chrono::microseconds;
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (value.rfind("t=", 0) == 0) value.remove_prefix(2);
  // Whole part, then an optional fraction of a second ("1700000000.123").
  std::size_t dot = value.find('.');
  std::string_view whole = value.substr(0, dot);
  std::string_view fraction = dot == std::string_view::npos ? "" : value.substr(dot + 1);
  int64_t n = 0;
  auto [end, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), n);
  if (ec != std::errc{} || end != whole.data() + whole.size() || whole.empty() || n < 0)
    return std::nullopt;
  if (dot != std::string_view::npos && fraction.empty()) return std::nullopt;
  int64_t us = 0;
  if (!fraction.empty()) {
    // Seconds with a fraction: at most microseconds of it count.
    if (fraction.size() > 9 || n > 100'000'000'000) return std::nullopt;
    int64_t frac = 0;
    auto [fend, fec] = std::from_chars(fraction.data(), fraction.data() + fraction.size(), frac);
    if (fec != std::errc{} || fend != fraction.data() + fraction.size()) return std::nullopt;
    for (std::size_t i = fraction.size(); i < 6; ++i) frac *= 10;
    for (std::size_t i = 6; i < fraction.size(); ++i) frac /= 10;
    us = n * 1'000'000 + frac;
  } else if (n < 100'000'000'000) {  // seconds (until the year 5138)
    us = n * 1'000'000;
  } else if (n < 100'000'000'000'000) {  // milliseconds
    us = n * 1'000;
  } else if (n < 100'000'000'000'000'000) {  // microseconds
    us = n;
  } else {
    return std::nullopt;
  }
  int64_t now_us = std::chrono::duration_cast<microseconds>(now.time_since_epoch()).count();
  int64_t age = now_us - us;
  if (age > int64_t{3'600'000'000} || age < -int64_t{60'000'000}) return std::nullopt;
  return microseconds(age < 0 ? 0 : age);
}

}  // namespace clutch::http
