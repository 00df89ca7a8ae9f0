// clutchctl's side of the control socket: finds a cluster's socket, sends one request, and prints
// the answers (a table for people, --json for scripts). Exit codes: 0 done, 1 the cluster said
// no (a failed reload, a refused scale), 2 no cluster to talk to or bad usage.
#pragma once

#include <string>

namespace clutchctl {

struct Target {
  std::string socket;  // --socket PATH
  std::string app;     // --app NAME
  bool json = false;   // --json
};

int status_command(const Target& target, bool watch);
int reload_command(const Target& target);
int stop_command(const Target& target, bool now);
int scale_command(const Target& target, const std::string& how_many);
// `which`: a worker slot number, "agent", or "pid:P".
int restart_command(const Target& target, const std::string& which);

}  // namespace clutchctl
