#include "master/proc_stats.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

namespace clutch::master {
namespace {

// The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses).
std::string stat_fields(pid_t pid) {
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto paren = text.rfind(')');
  return paren == std::string::npos || paren + 2 >= text.size() ? std::string()
                                                                : text.substr(paren + 2);
}

}  // namespace

std::size_t resident_bytes(pid_t pid) {
  std::ifstream statm(fmt::format("/proc/{}/statm", pid));
  std::size_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

double cpu_seconds(pid_t pid) {
  std::istringstream fields(stat_fields(pid));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Field 3 of stat is the state; utime and stime are fields 14 and 15 (12 and 13 after it).
  for (int i = 1; i <= 13 && fields >> field; ++i) {
    if (i == 12) utime = std::stoull(field);
    if (i == 13) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

bool process_is_stopped(pid_t pid) {
  std::string fields = stat_fields(pid);
  return !fields.empty() && (fields[0] == 'T' || fields[0] == 't');
}

}  // namespace clutch::master
