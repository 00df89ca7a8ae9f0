#include "master/master_main.hpp"

#include <spdlog/spdlog.h>
#include <asio/io_context.hpp>

#include <iostream>

#include "common/config_loader.hpp"
#include "common/log.hpp"
#include "master/supervisor.hpp"

namespace clutch::master {

int master_main(int argc, char** argv, const std::string& app_name) {
  init_logging(app_name + " master");
  Config config;
  try {
    if (auto exit_code = load_config(argc, argv, app_name, config)) return *exit_code;
  } catch (const ConfigError& e) {
    std::cerr << app_name << ": " << e.what() << std::endl;
    return kExitUsage;
  }
  if (!config.log_dir.empty() || config.log_format != "text") {
    try {
      init_logging(app_name + " master",
                   LogOptions{config.log_dir, config.log_format, app_name + ".master.log"});
    } catch (const ConfigError& e) {
      std::cerr << app_name << ": " << e.what() << std::endl;
      return kExitUsage;
    }
  }
  asio::io_context io(1);
  Supervisor supervisor(io, config, app_name, std::vector<std::string>(argv, argv + argc));
  return supervisor.run();
}

}  // namespace clutch::master
