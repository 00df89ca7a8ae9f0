// The master process from the command line to its exit code.
#pragma once

#include <string>

namespace clutch::master {

int master_main(int argc, char** argv, const std::string& app_name);

}  // namespace clutch::master
