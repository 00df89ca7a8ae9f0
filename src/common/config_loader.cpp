#include "common/config_loader.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>

#include "clutch/version.hpp"
#include "common/config_keys.hpp"

namespace clutch {
namespace {

std::string env_name(const std::string& key) {
  std::string name = "CLUTCH_";
  for (char c : key) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

void apply_toml_file(Config& config, const std::string& path) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("config: cannot read {}: {} (line {})", path, e.description(),
                                  e.source().begin.line));
  }
  std::string source = "file " + path;
  for (auto&& [key, node] : table) {
    // Tables are the application's own sections ([app], [orders], ...): not ours to check.
    if (node.is_table()) continue;
    std::string text;
    if (auto s = node.value<std::string>())
      text = *s;
    else if (auto i = node.value<int64_t>()) {
      if (*i < 0) {
        throw ConfigError(fmt::format("config: bad value {} for {} (from {}): must not be negative",
                                      *i, key.str(), source));
      }
      text = std::to_string(*i);
    } else {
      throw ConfigError(fmt::format(
          "config: bad value for {} (from {}): expected a number or a string", key.str(), source));
    }
    apply_config_value(config, key.str(), text, source);
  }
  config.config_file = path;
}

}  // namespace

std::optional<int> load_config(int argc, char** argv, std::string_view app_name, Config& out) {
  CLI::App cli{fmt::format("{} (a clutch cluster: one master, one agent, N workers)", app_name),
               std::string(app_name)};
  std::optional<std::string> workers, port, host, config_file;
  std::vector<std::string> settings;
  bool version = false;
  cli.add_option("-w,--workers", workers, "worker processes (0: one per usable CPU)");
  cli.add_option("-p,--port", port, "TCP port the master binds (0: any free port)");
  cli.add_option("--host", host, "address the master binds");
  cli.add_option("-c,--config", config_file, "TOML file with settings");
  cli.add_option("-s,--set", settings, "any setting as key=value, e.g. -s kill_timeout=2s")
      ->expected(1)
      ->take_all();
  cli.add_flag("-v,--version", version, "print the version and exit");
  cli.footer(fmt::format("Settings (file key, CLUTCH_<KEY> variable, -s key=value): {}",
                         fmt::join(config_keys(), ", ")));
  try {
    cli.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return cli.exit(e);
  } catch (const CLI::ParseError& e) {
    throw ConfigError(fmt::format("command line: {} (see --help)", e.what()));
  }
  if (version) {
    std::cout << app_name << " (clutch " << kVersion << ")\n";
    return 0;
  }

  Config config;
  const char* env_file = std::getenv("CLUTCH_CONFIG");
  std::optional<std::string> file =
      config_file ? config_file : (env_file ? std::optional<std::string>(env_file) : std::nullopt);
  if (file) apply_toml_file(config, *file);
  for (const std::string& key : config_keys()) {
    std::string name = env_name(key);
    if (const char* value = std::getenv(name.c_str())) {
      apply_config_value(config, key, value, "environment " + name);
    }
  }
  if (workers) apply_config_value(config, "workers", *workers, "--workers");
  if (port) apply_config_value(config, "port", *port, "--port");
  if (host) apply_config_value(config, "host", *host, "--host");
  for (const std::string& setting : settings) {
    auto eq = setting.find('=');
    if (eq == std::string::npos) {
      throw ConfigError(fmt::format("command line: --set expects key=value, got '{}'", setting));
    }
    apply_config_value(config, setting.substr(0, eq), setting.substr(eq + 1), "--set");
  }
  validate_config(config);
  out = config;
  return std::nullopt;
}

}  // namespace clutch
