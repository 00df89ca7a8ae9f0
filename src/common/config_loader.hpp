// Builds the master's Config from a TOML file, CLUTCH_* environment variables and command-line
// flags, in that order of precedence (later wins).
#pragma once

#include <optional>
#include <string_view>

#include "clutch/config.hpp"

namespace clutch {

// Returns the exit code when the command line asks to exit at once (--help, --version), after
// printing; throws ConfigError on a bad file, variable or flag.
std::optional<int> load_config(int argc, char** argv, std::string_view app_name, Config& out);

// Applies the settings of a TOML document (as a config file holds them) to `config`; throws
// ConfigError naming `where`. What load_config does with --config's file, minus the file.
void apply_config_toml(Config& config, std::string_view text, std::string_view where);

}  // namespace clutch
