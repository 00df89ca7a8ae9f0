// The table of configuration keys: how each is parsed and checked, whatever the source (file,
// environment, flag). Pure: strings in, Config or ConfigError out.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "clutch/config.hpp"

namespace clutch {

// Sets `key` from its text form; throws ConfigError naming the key, the source and the value.
void apply_config_value(Config& config, std::string_view key, std::string_view value,
                        std::string_view source);
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
