#include "common/config_loader.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>

#include "clutch/version.hpp"
#include "common/config_keys.hpp"

namespace clutch {
namespace {

std::string env_name(const std::string& key) {
  std::string name = "CLUTCH_";
  for (char c : key) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

// The text of a TOML value for apply_config_value, or why it cannot be one.
std::string value_text(const toml::node& node, const std::string& key, const std::string& source) {
  auto fail = [&](const std::string& why) {
    return ConfigError(fmt::format("config: bad value for {} (from {}): {}", key, source, why));
  };
  ValueKind kind = config_value_kind(key);
  if (auto s = node.as_string()) {
    // TOML has numbers and booleans: a quoted one is a slip (or a template's) worth naming.
    if (kind == ValueKind::kNumber) {
      throw fail(fmt::format("expected a number, not the string \"{}\": write {} = {}", s->get(),
                             key, s->get()));
    }
    if (kind == ValueKind::kBool) {
      throw fail(fmt::format(
          "expected true or false, not the string \"{}\": write {} = true or {} = false", s->get(),
          key, key));
    }
    return s->get();
  }
  if (auto i = node.as_integer()) {
    if (i->get() < 0) throw fail(fmt::format("{} must not be negative", i->get()));
    bool zero_is_off = kind == ValueKind::kOptionalDuration && i->get() == 0;
    if ((kind == ValueKind::kDuration || kind == ValueKind::kOptionalDuration) && !zero_is_off) {
      throw fail(
          fmt::format("a bare number is not a duration: write the unit, e.g. {} = \"{}s\" or "
                      "{} = \"{}ms\"",
                      key, i->get(), key, i->get()));
    }
    if (kind == ValueKind::kBool) {
      throw fail(fmt::format("expected true or false, not {}", i->get()));
    }
    return std::to_string(i->get());
  }
  if (auto b = node.as_boolean()) {
    if (kind != ValueKind::kBool && kind != ValueKind::kText)
      throw fail(fmt::format("expected {}, not {}",
                             kind == ValueKind::kNumber ? "a number" : "a value with its unit",
                             b->get()));
    return b->get() ? "true" : "false";
  }
  if (auto f = node.as_floating_point()) {
    // The suggestion drops the fraction ({:.0f} rounds without the overflow of an integer cast).
    throw fail(fmt::format("{} is not a whole number; write e.g. {} = {:.0f}", f->get(), key,
                           std::trunc(f->get())));
  }
  throw fail("expected a number, a string or true/false");
}

// [app] and its sub-tables, flattened into dotted keys.
void collect_app_settings(const toml::table& table, const std::string& prefix,
                          std::map<std::string, std::string>& out) {
  for (auto&& [key, node] : table) {
    if (key.str().find_first_of("=\n") != std::string_view::npos) {
      throw ConfigError(
          fmt::format("config: [app] key '{}' has '=' or a newline in it", key.str()));
    }
    std::string name =
        prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    if (auto sub = node.as_table()) {
      collect_app_settings(*sub, name, out);
    } else if (auto s = node.as_string()) {
      out[name] = s->get();
    } else {
      std::ostringstream text;
      node.visit([&](const auto& value) { text << value; });
      out[name] = text.str();
    }
  }
}

void apply_toml_table(Config& config, const toml::table& table, std::string_view where) {
  std::string source = std::string(where);
  for (auto&& [key, node] : table) {
    if (auto section = node.as_table()) {
      if (key.str() != "app") {
        throw ConfigError(fmt::format(
            "config: unknown table [{}] in {}: clutch's keys go at the top of the file, before "
            "any table, and the application's own settings under [app]",
            key.str(), where));
      }
      collect_app_settings(*section, "", config.app);
      continue;
    }
    apply_config_value(config, key.str(), value_text(node, std::string(key.str()), source), source);
  }
}

// Parses with `parse` (a file or a text); a syntax error becomes a ConfigError naming `where`.
template <typename Parse>
toml::table parse_toml(Parse&& parse, std::string_view where) {
  try {
    return parse();
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("config: cannot read {}: {} (line {})", where, e.description(),
                                  e.source().begin.line));
  }
}

void apply_toml_file(Config& config, const std::string& path) {
  // stat(), not std::filesystem: that library's pages would be mapped in the master alone.
  struct stat info {};
  if (stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    throw ConfigError(fmt::format("config: {} is a directory; --config takes a TOML file", path));
  }
  apply_toml_table(config, parse_toml([&] { return toml::parse_file(path); }, path),
                   "file " + path);
  config.config_file = path;
}

}  // namespace

void apply_config_toml(Config& config, std::string_view text, std::string_view where) {
  apply_toml_table(config, parse_toml([&] { return toml::parse(text); }, where), where);
}

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
