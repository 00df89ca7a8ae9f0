// The master's pid file (config pid_file), for tools that signal it by pid (logrotate's
// `kill -USR1 $(cat FILE)`, init scripts). Written whole (a temporary file renamed over it), so a
// reader never sees half a pid; removed at exit only while it still names this process, so the
// old master of an upgrade leaves the new one's pid in place.
#pragma once

#include <sys/types.h>

#include <string>

namespace clutch::master {

// Writes "PID\n" to `path`; throws std::runtime_error naming the path and the reason.
void write_pid_file(const std::string& path, pid_t pid);
// Removes `path` if it holds `pid`; anything else (another master's pid, no file) is left alone.
void remove_pid_file_if_ours(const std::string& path, pid_t pid);

}  // namespace clutch::master
