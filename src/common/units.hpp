// Parsing of the human forms of durations ("250ms", "5s", "1m") and sizes ("64MiB"). Pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace clutch {

// A bare number is milliseconds. Units: ms, s, m, h. Returns nullopt on anything else.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
// A bare number is bytes. Units: B, K/KB/KiB, M/MB/MiB, G/GB/GiB (all powers of 1024).
std::optional<uint64_t> parse_size(std::string_view text);
// A comma-separated list of strictly increasing durations, each an integer with a unit of us,
// ms or s ("50us,1ms,2s"), as microseconds. Returns nullopt on anything else (an empty list too).
std::optional<std::vector<uint64_t>> parse_microsecond_list(std::string_view text);
// A non-negative decimal integer that fits in uint64_t.
std::optional<uint64_t> parse_unsigned(std::string_view text);

}  // namespace clutch
