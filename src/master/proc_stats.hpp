// What the master reads of a child from /proc: memory, CPU time, whether it is stopped. Each
// returns a neutral value (0, false) for a process that is gone.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace clutch::master {

std::size_t resident_bytes(pid_t pid);  // RSS, from /proc/PID/statm
double cpu_seconds(pid_t pid);          // user + system time, from /proc/PID/stat
bool process_is_stopped(pid_t pid);     // state T or t: SIGSTOP or a debugger

}  // namespace clutch::master
