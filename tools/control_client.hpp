// clutchctl's side of the control socket: finds a cluster's socket, sends one request, and prints
// the answers (a table for people, --json for scripts). Exit codes: 0 done, 1 the cluster said
// no (a failed reload, a refused scale), 2 no cluster to talk to or bad usage.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace clutchctl {

struct Target {
  std::string socket;  // --socket PATH
  std::string app;     // --app NAME
  bool json = false;   // --json
};

// Sends `request` and calls `on_line` for every answer line until the one marked done; returns
// the last line, or an object with "error" (and "unreachable") if the conversation broke.
nlohmann::json converse(const Target& target, const nlohmann::json& request,
                        const std::function<void(const nlohmann::json&)>& on_line);
// Prints the answer as JSON with --json, the error otherwise; returns the exit code.
int finish(const Target& target, const nlohmann::json& answer);
std::string mib(double bytes);
std::string seconds(double ms);  // "4.2s", "3m07s", "2h05m"

int status_command(const Target& target, bool watch);
int reload_command(const Target& target);
int upgrade_command(const Target& target);
// Waits (unless !wait) until the master has exited.
int stop_command(const Target& target, bool now, bool wait);
int scale_command(const Target& target, const std::string& how_many);
// `which`: a worker slot number, "agent", or "pid:P".
int restart_command(const Target& target, const std::string& which);
// ops_commands.cpp: schedules, queues and logs.
int jobs_command(const Target& target);
int job_run_command(const Target& target, const std::string& name, int timeout_s);
// `what`: "" (every consumer), "dead", "requeue" or "purge".
int queue_command(const Target& target, const std::string& what, const std::string& name,
                  const std::vector<std::string>& ids, bool all, std::size_t limit);
// The cluster's log files (log_dir), merged by time; `role` "" for all.
int logs_command(const Target& target, const std::string& role, bool follow, std::size_t lines);

}  // namespace clutchctl
