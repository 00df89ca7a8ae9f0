// Parsing of the human forms of durations ("250ms", "5s", "1m") and sizes ("64MiB"). Pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace clutch {

// A bare number is milliseconds. Units: ms, s, m, h. Returns nullopt on anything else.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
// A bare number is bytes. Units: B, K/KB/KiB, M/MB/MiB, G/GB/GiB (all powers of 1024).
std::optional<uint64_t> parse_size(std::string_view text);
// A non-negative decimal integer that fits in uint64_t.
std::optional<uint64_t> parse_unsigned(std::string_view text);

}  // namespace clutch
