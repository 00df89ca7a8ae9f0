#include "common/config_keys.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>

#include "common/units.hpp"

namespace clutch {
namespace {

using Setter =
    std::function<void(Config&, std::string_view, const std::function<void(std::string_view)>&)>;

struct Key {
  std::string name;
  Setter set;
  std::function<std::string(const Config&)> get;
  ValueKind kind = ValueKind::kText;
};

// A duration must carry its unit ("5s"): a bare 5 read as 5 ms, a kill_timeout that kills at once.
std::optional<std::chrono::milliseconds> parse_duration_with_unit(std::string_view v) {
  if (!v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return parse_duration(v);
}

std::string unitless_hint(std::string_view v) {
  if (v.empty() || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return "";
  return fmt::format(" (a bare {} has no unit: write \"{}s\" or \"{}ms\")", v, v, v);
}

Key duration_key(std::string name, std::chrono::milliseconds Config::*field) {
  return Key{name,
             [field](Config& c, std::string_view v, const auto& fail) {
               auto d = parse_duration_with_unit(v);
               if (!d || d->count() <= 0)
                 fail("expected a positive duration such as 500ms, 5s or 1m" + unitless_hint(v));
               c.*field = *d;
             },
             [field](const Config& c) { return std::to_string((c.*field).count()) + "ms"; },
             ValueKind::kDuration};
}

Key bool_key(std::string name, bool Config::*field) {
  return Key{name,
             [field](Config& c, std::string_view v, const auto& fail) {
               if (v == "true" || v == "1" || v == "yes")
                 c.*field = true;
               else if (v == "false" || v == "0" || v == "no")
                 c.*field = false;
               else
                 fail("expected true or false");
             },
             [field](const Config& c) { return std::string(c.*field ? "true" : "false"); },
             ValueKind::kBool};
}

// A count of at most 10^12, 0 meaning off; `example` says what is expected.
Key count_key(std::string name, uint64_t Config::*field, std::string example) {
  return Key{name,
             [field, example](Config& c, std::string_view v, const auto& fail) {
               auto n = parse_unsigned(v);
               if (!n || *n > 1'000'000'000'000) fail("expected " + example);
               c.*field = *n;
             },
             [field](const Config& c) { return std::to_string(c.*field); }, ValueKind::kNumber};
}

Key size_key(std::string name, std::size_t Config::*field, uint64_t min, uint64_t max) {
  return Key{
      name,
      [field, min, max](Config& c, std::string_view v, const auto& fail) {
        auto n = parse_size(v);
        if (!n || *n < min || *n > max)
          fail(fmt::format("expected a size from {} to {} bytes, such as 64KiB or 8MiB", min, max));
        c.*field = static_cast<std::size_t>(*n);
      },
      [field](const Config& c) { return std::to_string(c.*field); }, ValueKind::kSize};
}

// A duration where 0 (or "off") means "no limit"; others must be at least `min`.
Key optional_duration_key(std::string name, std::chrono::milliseconds Config::*field,
                          std::chrono::milliseconds min = std::chrono::milliseconds(1)) {
  return Key{name,
             [field, min](Config& c, std::string_view v, const auto& fail) {
               if (v == "0" || v == "off") {
                 c.*field = std::chrono::milliseconds(0);
                 return;
               }
               auto d = parse_duration_with_unit(v);
               if (!d || *d < min) {
                 fail((min.count() > 1
                           ? fmt::format("expected a duration of {}ms or more, such as 30s, or off",
                                         min.count())
                           : std::string("expected a duration such as 30s, or off")) +
                      unitless_hint(v));
               }
               c.*field = *d;
             },
             // "off" for 0: "0ms" would read back as a duration under the minimum.
             [field](const Config& c) {
               auto ms = (c.*field).count();
               return ms == 0 ? std::string("off") : std::to_string(ms) + "ms";
             },
             ValueKind::kOptionalDuration};
}

const std::vector<Key>& keys() {
  static const std::vector<Key> table = {
      {"workers",
       [](Config& c, std::string_view v, const auto& fail) {
         auto n = parse_unsigned(v);
         if (!n || *n > kMaxWorkers)
           fail(fmt::format("expected a number of workers from 0 (one per usable CPU) to {}",
                            kMaxWorkers));
         c.workers = static_cast<unsigned>(*n);
       },
       [](const Config& c) { return std::to_string(c.workers); }, ValueKind::kNumber},
      {"host",
       [](Config& c, std::string_view v, const auto& fail) {
         if (v.empty() || v == "unix:")
           fail("expected an address such as 127.0.0.1, ::1, 0.0.0.0, or unix:/path/app.sock");
         c.host = std::string(v);
       },
       [](const Config& c) { return c.host; }},
      {"port",
       [](Config& c, std::string_view v, const auto& fail) {
         auto n = parse_unsigned(v);
         if (!n || *n > 65535) fail("expected a TCP port from 0 (any free port) to 65535");
         c.port = static_cast<int>(*n);
       },
       [](const Config& c) { return std::to_string(c.port); }, ValueKind::kNumber},
      bool_key("reuse_port", &Config::reuse_port),
      duration_key("startup_timeout", &Config::startup_timeout),
      duration_key("kill_timeout", &Config::kill_timeout),
      optional_duration_key("hang_timeout", &Config::hang_timeout, std::chrono::milliseconds(100)),
      duration_key("min_uptime", &Config::min_uptime),
      duration_key("restart_backoff_initial", &Config::restart_backoff_initial),
      duration_key("restart_backoff_max", &Config::restart_backoff_max),
      {"max_restarts",
       [](Config& c, std::string_view v, const auto& fail) {
         auto n = parse_unsigned(v);
         if (!n || *n > 1000000) fail("expected a count such as 5 (0: restart for ever)");
         c.max_restarts = static_cast<unsigned>(*n);
       },
       [](const Config& c) { return std::to_string(c.max_restarts); }, ValueKind::kNumber},
      duration_key("max_restarts_window", &Config::max_restarts_window),
      {"max_message_size",
       [](Config& c, std::string_view v, const auto& fail) {
         auto n = parse_size(v);
         if (!n || *n < 1024 || *n > (uint64_t{1} << 30)) {
           fail("expected a size from 1KiB to 1GiB, such as 64MiB");
         }
         c.max_message_size = static_cast<std::size_t>(*n);
       },
       [](const Config& c) { return std::to_string(c.max_message_size); }},
      size_key("max_rss", &Config::max_rss, 0, uint64_t{1} << 44),
      count_key("max_requests", &Config::max_requests,
                "a request count such as 10000 (0: no limit)"),
      count_key("max_requests_jitter", &Config::max_requests_jitter,
                "a request count such as 500 (0: none)"),
      optional_duration_key("drain_grace", &Config::drain_grace),
      size_key("http_max_header_size", &Config::http_max_header_size, 1024, uint64_t{1} << 24),
      size_key("http_max_body_size", &Config::http_max_body_size, 0, uint64_t{1} << 40),
      duration_key("http_read_timeout", &Config::http_read_timeout),
      duration_key("http_idle_timeout", &Config::http_idle_timeout),
      optional_duration_key("http_handler_timeout", &Config::http_handler_timeout),
      duration_key("http_write_timeout", &Config::http_write_timeout),
      optional_duration_key("http_max_queue_time", &Config::http_max_queue_time),
      count_key("http_max_in_flight", &Config::http_max_in_flight,
                "a request count such as 256 (0: no limit)"),
      {"http_duration_buckets",
       [](Config& c, std::string_view v, const auto& fail) {
         auto bounds = parse_microsecond_list(v);
         if (!bounds)
           fail(
               "expected increasing durations with a unit of us, ms or s, such as "
               "\"50us,1ms,10ms,1s\"");
         c.http_duration_buckets_us = std::move(*bounds);
       },
       [](const Config& c) {
         std::string out;
         for (uint64_t us : c.http_duration_buckets_us)
           out += (out.empty() ? "" : ",") + std::to_string(us) + "us";
         return out;
       }},
      {"control_socket",
       [](Config& c, std::string_view v, const auto&) { c.control_socket = std::string(v); },
       [](const Config& c) { return c.control_socket; }},
      {"pid_file", [](Config& c, std::string_view v, const auto&) { c.pid_file = std::string(v); },
       [](const Config& c) { return c.pid_file; }},
      {"metrics_listen",
       [](Config& c, std::string_view v, const auto& fail) {
         if (!v.empty() && v.rfind(':') == std::string_view::npos)
           fail("expected HOST:PORT, such as 127.0.0.1:9464");
         c.metrics_listen = std::string(v);
       },
       [](const Config& c) { return c.metrics_listen; }},
      bool_key("sticky", &Config::sticky),
      bool_key("dashboard_controls", &Config::dashboard_controls),
      {"socket_mode",
       [](Config& c, std::string_view v, const auto& fail) {
         unsigned mode = 0;
         if (v.empty() || v.size() > 4) fail("expected an octal mode such as 0660");
         for (char ch : v) {
           if (ch < '0' || ch > '7') fail("expected an octal mode such as 0660");
           mode = mode * 8 + static_cast<unsigned>(ch - '0');
         }
         c.socket_mode = mode;
       },
       [](const Config& c) { return fmt::format("{:04o}", c.socket_mode); }},
      {"on_uncaught_exception",
       [](Config& c, std::string_view v, const auto& fail) {
         if (v != "log" && v != "exit") fail("expected log or exit");
         c.on_uncaught_exception = std::string(v);
       },
       [](const Config& c) { return c.on_uncaught_exception; }},
      {"log_dir", [](Config& c, std::string_view v, const auto&) { c.log_dir = std::string(v); },
       [](const Config& c) { return c.log_dir; }},
      {"log_format",
       [](Config& c, std::string_view v, const auto& fail) {
         if (v != "text" && v != "json") fail("expected text or json");
         c.log_format = std::string(v);
       },
       [](const Config& c) { return c.log_format; }},
      {"user", [](Config& c, std::string_view v, const auto&) { c.user = std::string(v); },
       [](const Config& c) { return c.user; }},
      {"group", [](Config& c, std::string_view v, const auto&) { c.group = std::string(v); },
       [](const Config& c) { return c.group; }},
      {"config_file",
       [](Config& c, std::string_view v, const auto&) { c.config_file = std::string(v); },
       [](const Config& c) { return c.config_file; }},
  };
  return table;
}

}  // namespace

void apply_config_value(Config& config, std::string_view key, std::string_view value,
                        std::string_view source) {
  for (const Key& k : keys()) {
    if (k.name != key) continue;
    k.set(config, value, [&](std::string_view why) {
      throw ConfigError(
          fmt::format("config: bad value '{}' for {} (from {}): {}", value, key, source, why));
    });
    return;
  }
  throw ConfigError(fmt::format("config: unknown key '{}' (from {}); known keys: {}", key, source,
                                fmt::join(config_keys(), ", ")));
}

ValueKind config_value_kind(std::string_view key) {
  for (const Key& k : keys()) {
    if (k.name == key) return k.kind;
  }
  return ValueKind::kText;
}

void validate_config(const Config& c) {
  if (c.restart_backoff_max < c.restart_backoff_initial) {
    throw ConfigError(
        fmt::format("config: restart_backoff_max ({} ms) is below restart_backoff_initial ({} ms)",
                    c.restart_backoff_max.count(), c.restart_backoff_initial.count()));
  }
  if (c.max_requests_jitter > 0 && c.max_requests == 0) {
    throw ConfigError(
        "config: max_requests_jitter needs max_requests (the jitter spreads that limit)");
  }
}

const std::vector<std::string>& config_keys() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const Key& k : keys()) {
      if (k.name != "config_file") out.push_back(k.name);
    }
    return out;
  }();
  return names;
}

namespace {
// Application settings travel as "app.KEY=VALUE" lines; a newline or backslash in a value is
// escaped so that each setting stays on its line.
std::string escape_line(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string unescape_line(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      out += text[i + 1] == 'n' ? '\n' : text[i + 1];
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}
constexpr std::string_view kAppPrefix = "app.";
}  // namespace

std::chrono::milliseconds heartbeat_interval(std::chrono::milliseconds hang_timeout) {
  // Several beats per timeout, so one late beat is not a hang; never busier than 20 a second.
  return std::clamp(hang_timeout / 4, std::chrono::milliseconds(50),
                    std::chrono::milliseconds(1000));
}

std::string serialize_config(const Config& config) {
  std::string out;
  for (const Key& k : keys()) out += k.name + "=" + escape_line(k.get(config)) + "\n";
  for (const auto& [key, value] : config.app)
    out += std::string(kAppPrefix) + escape_line(key) + "=" + escape_line(value) + "\n";
  return out;
}

Config deserialize_config(std::string_view text) {
  Config config;
  while (!text.empty()) {
    auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string key = unescape_line(line.substr(0, eq)), value = unescape_line(line.substr(eq + 1));
    if (key.starts_with(kAppPrefix)) {
      config.app[key.substr(kAppPrefix.size())] = value;
    } else {
      apply_config_value(config, key, value, "the master");
    }
  }
  return config;
}

}  // namespace clutch
