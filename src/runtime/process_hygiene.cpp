#include "runtime/process_hygiene.hpp"

#include "common/signals.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace clutch::runtime {
namespace {

void on_master_death(int) {
  // Async-signal-safe: one syscall. The child leads its own group (the master spawns it so).
  kill(0, SIGKILL);
}

void close_on_exec(int fd) {
  if (fd < 0) return;
  int flags = fcntl(fd, F_GETFD);
  if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

}  // namespace

void close_on_exec_above(int highest_kept) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  std::vector<int> fds;
  while (dirent* entry = readdir(dir)) {
    int fd = std::atoi(entry->d_name);
    if (fd > highest_kept && fd != dirfd(dir)) fds.push_back(fd);
  }
  closedir(dir);
  for (int fd : fds) close_on_exec(fd);
}

void scrub_internal_environment() {
  std::vector<std::string> names;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "CLUTCH_INTERNAL_", 16) != 0) continue;
    const char* eq = std::strchr(*e, '=');
    names.emplace_back(*e, eq != nullptr ? static_cast<std::size_t>(eq - *e) : std::strlen(*e));
  }
  for (const std::string& name : names) unsetenv(name.c_str());
}

bool die_with_master(pid_t master_pid) {
  struct sigaction action {};
  action.sa_handler = on_master_death;
  sigemptyset(&action.sa_mask);
  // SIGKILL as the death signal would kill this process alone and orphan its descendants.
  sigaction(master_death_signal(), &action, nullptr);
  prctl(PR_SET_PDEATHSIG, master_death_signal());
  // The master may have died before the prctl: then no signal comes, so look.
  if (getppid() != master_pid) {
    kill(0, SIGKILL);
    return false;
  }
  return true;
}

}  // namespace clutch::runtime
