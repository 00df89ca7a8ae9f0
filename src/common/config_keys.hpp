// The table of configuration keys: how each is parsed and checked, whatever the source (file,
// environment, flag). Pure: strings in, Config or ConfigError out.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "clutch/config.hpp"

namespace clutch {

// The most workers a cluster runs: the workers key's bound, and scale's (clutchctl, dashboard).
inline constexpr unsigned kMaxWorkers = 1024;

// Sets `key` from its text form; throws ConfigError naming the key, the source and the value.
void apply_config_value(Config& config, std::string_view key, std::string_view value,
                        std::string_view source);
// What a key's value is, for the sources that have types (TOML): a number or a boolean must not
// be written as a string, and a duration must not be a bare number (which read as milliseconds).
enum class ValueKind { kText, kNumber, kBool, kDuration, kOptionalDuration, kSize };
// The kind of a known key (kText for an unknown one: apply_config_value names it).
ValueKind config_value_kind(std::string_view key);

// Checks the relations between keys (e.g. back-off bounds); throws ConfigError.
void validate_config(const Config& config);
// Every key, in a stable order (for --help and the environment names).
const std::vector<std::string>& config_keys();
// How often a child reports that its loop turns, for a given hang_timeout.
std::chrono::milliseconds heartbeat_interval(std::chrono::milliseconds hang_timeout);
// "key=value" lines that apply_config_value reads back into an equal Config.
std::string serialize_config(const Config& config);
Config deserialize_config(std::string_view text);

}  // namespace clutch
