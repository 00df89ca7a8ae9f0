#include "common/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace clutch {

void init_logging(const std::string& label) {
  auto logger = spdlog::stderr_logger_st(label);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e [%n %P] %l: %v");
  const char* level = std::getenv("CLUTCH_LOG_LEVEL");
  logger->set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::info);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

}  // namespace clutch
