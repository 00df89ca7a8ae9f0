#include "common/log.hpp"

#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>

#include "clutch/config.hpp"

namespace clutch {
namespace {

std::string g_label;
LogOptions g_options;

// One JSON object a line: {"time":...,"proc":...,"pid":...,"level":...,"msg":...}, the message
// escaped (a pattern cannot escape what it prints).
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto time = std::chrono::system_clock::to_time_t(msg.time);
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()) % 1000;
    std::tm tm{};
    gmtime_r(&time, &tm);
    fmt::format_to(std::back_inserter(dest),
                   R"({{"time":"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z","proc":")",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ms.count());
    escape(std::string_view(msg.logger_name.data(), msg.logger_name.size()), dest);
    fmt::format_to(std::back_inserter(dest), R"(","pid":{},"level":"{}","msg":")", getpid(),
                   spdlog::level::to_string_view(msg.level));
    escape(std::string_view(msg.payload.data(), msg.payload.size()), dest);
    dest.append(std::string_view("\"}\n"));
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }

 private:
  static void escape(std::string_view text, spdlog::memory_buf_t& dest) {
    for (char c : text) {
      switch (c) {
        case '"':
          dest.append(std::string_view("\\\""));
          break;
        case '\\':
          dest.append(std::string_view("\\\\"));
          break;
        case '\n':
          dest.append(std::string_view("\\n"));
          break;
        case '\r':
          dest.append(std::string_view("\\r"));
          break;
        case '\t':
          dest.append(std::string_view("\\t"));
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20)
            fmt::format_to(std::back_inserter(dest), "\\u{:04x}", static_cast<unsigned>(c));
          else
            dest.push_back(c);
      }
    }
  }
};

void install() {
  std::shared_ptr<spdlog::logger> logger;
  if (g_options.dir.empty()) {
    logger = std::make_shared<spdlog::logger>(g_label,
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
  } else {
    std::string path = g_options.dir + "/" + g_options.file_name;
    try {
      logger = std::make_shared<spdlog::logger>(
          g_label, std::make_shared<spdlog::sinks::basic_file_sink_mt>(path));
    } catch (const spdlog::spdlog_ex& e) {
      throw ConfigError(fmt::format("log_dir: cannot open {}: {}", path, e.what()));
    }
  }
  if (g_options.format == "json")
    logger->set_formatter(std::make_unique<JsonFormatter>());
  else
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e [%n %P] %l: %v");
  const char* level = std::getenv("CLUTCH_LOG_LEVEL");
  logger->set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::info);
  logger->flush_on(spdlog::level::trace);  // every line in one write: processes share files
  spdlog::set_default_logger(logger);
}

}  // namespace

void init_logging(const std::string& label, const LogOptions& options) {
  g_label = label;
  g_options = options;
  install();
}

void reopen_logs() {
  if (g_options.dir.empty()) return;
  install();
  spdlog::info("log file reopened");
}

}  // namespace clutch
