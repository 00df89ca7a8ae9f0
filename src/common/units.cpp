#include "common/units.hpp"

#include <cctype>
#include <limits>
#include <string>

namespace clutch {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Splits "250ms" into 250 and "ms"; fails without digits or on overflow.
std::optional<std::pair<uint64_t, std::string>> split_number(std::string_view text) {
  text = trim(text);
  std::size_t i = 0;
  uint64_t value = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
    ++i;
  }
  if (i == 0) return std::nullopt;
  std::string unit;
  for (char c : trim(text.substr(i)))
    unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return std::make_pair(value, unit);
}

std::optional<uint64_t> scaled(uint64_t value, uint64_t factor) {
  if (factor != 0 && value > std::numeric_limits<uint64_t>::max() / factor) return std::nullopt;
  return value * factor;
}

}  // namespace

std::optional<std::vector<uint64_t>> parse_microsecond_list(std::string_view text) {
  std::vector<uint64_t> out;
  while (true) {
    auto comma = text.find(',');
    auto parts = split_number(text.substr(0, comma));
    if (!parts) return std::nullopt;
    auto [value, unit] = *parts;
    uint64_t factor = unit == "us" ? 1 : unit == "ms" ? 1000 : unit == "s" ? 1'000'000 : 0;
    auto us = scaled(value, factor);
    if (factor == 0 || !us || *us == 0 || (!out.empty() && *us <= out.back())) return std::nullopt;
    out.push_back(*us);
    if (comma == std::string_view::npos) return out;
    text.remove_prefix(comma + 1);
  }
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto parts = split_number(text);
  if (!parts) return std::nullopt;
  auto [value, unit] = *parts;
  uint64_t factor = 0;
  if (unit.empty() || unit == "ms")
    factor = 1;
  else if (unit == "s")
    factor = 1000;
  else if (unit == "m" || unit == "min")
    factor = 60'000;
  else if (unit == "h")
    factor = 3'600'000;
  else if (unit == "d")
    factor = 86'400'000;
  else
    return std::nullopt;
  auto ms = scaled(value, factor);
  if (!ms || *ms > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return std::chrono::milliseconds(static_cast<int64_t>(*ms));
}

std::optional<uint64_t> parse_size(std::string_view text) {
  auto parts = split_number(text);
  if (!parts) return std::nullopt;
  auto [value, unit] = *parts;
  if (unit.empty() || unit == "b") return value;
  if (unit == "k" || unit == "kb" || unit == "kib") return scaled(value, uint64_t{1} << 10);
  if (unit == "m" || unit == "mb" || unit == "mib") return scaled(value, uint64_t{1} << 20);
  if (unit == "g" || unit == "gb" || unit == "gib") return scaled(value, uint64_t{1} << 30);
  return std::nullopt;
}

std::optional<uint64_t> parse_unsigned(std::string_view text) {
  auto parts = split_number(text);
  if (!parts || !parts->second.empty()) return std::nullopt;
  return parts->first;
}

}  // namespace clutch
