// The config loader on arbitrary TOML and on arbitrary master-to-child config text: a bad input
// is a ConfigError with a message, never a crash; a good one round-trips to the children.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/config_keys.hpp"
#include "common/config_loader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size > 4096) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    clutch::Config config;
    clutch::apply_config_toml(config, text, "fuzz input");
    clutch::validate_config(config);
    clutch::Config child = clutch::deserialize_config(clutch::serialize_config(config));
    if (child.app != config.app || child.workers != config.workers) __builtin_trap();
  } catch (const clutch::ConfigError&) {
  }
  try {
    clutch::deserialize_config(text);
  } catch (const clutch::ConfigError&) {
  }
  return 0;
}
