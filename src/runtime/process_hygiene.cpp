#include "runtime/process_hygiene.hpp"

#include "clutch/config.hpp"
#include "common/signals.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
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

Credentials resolve_credentials(const std::string& user, const std::string& group) {
  passwd* pw = getpwnam(user.c_str());
  if (pw == nullptr) throw ConfigError(fmt::format("config: user '{}' does not exist", user));
  Credentials who{pw->pw_uid, pw->pw_gid};
  if (!group.empty()) {
    struct group* gr = getgrnam(group.c_str());
    if (gr == nullptr) throw ConfigError(fmt::format("config: group '{}' does not exist", group));
    who.gid = gr->gr_gid;
  }
  if (geteuid() != 0 && (who.uid != geteuid() || who.gid != getegid())) {
    throw ConfigError(
        fmt::format("config: running as user '{}' needs the master to start as root", user));
  }
  return who;
}

void drop_privileges(const Credentials& who) {
  if (geteuid() != 0) return;  // already the user (resolve_credentials checked)
  if (setgroups(0, nullptr) != 0 || setgid(who.gid) != 0 || setuid(who.uid) != 0 ||
      getuid() != who.uid || geteuid() != who.uid) {
    throw std::runtime_error(fmt::format("cannot drop privileges to uid {} gid {}: {}", who.uid,
                                         who.gid, std::strerror(errno)));
  }
}

std::string first_unwritable_as(const Credentials& who, const std::vector<std::string>& paths) {
  if (paths.empty()) return "";
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0)
    return fmt::format("{}: cannot check (pipe: {})", paths.front(), std::strerror(errno));
  pid_t pid = fork();
  if (pid < 0) {
    close(report[0]);
    close(report[1]);
    return fmt::format("{}: cannot check (fork: {})", paths.front(), std::strerror(errno));
  }
  if (pid == 0) {
    // Only async-signal-safe calls here: the master may already run threads.
    int answer[2] = {-1, 0};  // index of the first failing path, its errno
    if (setgroups(0, nullptr) != 0 || setgid(who.gid) != 0 || setuid(who.uid) != 0) {
      answer[0] = -2;
      answer[1] = errno;
    } else {
      for (size_t i = 0; i < paths.size(); ++i) {
        int fd = open(paths[i].c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
          answer[0] = static_cast<int>(i);
          answer[1] = errno;
          break;
        }
        close(fd);
      }
    }
    ssize_t ignored = write(report[1], answer, sizeof answer);
    (void)ignored;
    _exit(0);
  }
  close(report[1]);
  int answer[2] = {-1, 0};
  ssize_t got;
  do got = read(report[0], answer, sizeof answer);
  while (got < 0 && errno == EINTR);
  close(report[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (got != static_cast<ssize_t>(sizeof answer))
    return fmt::format("{}: cannot check (the checking process died)", paths.front());
  if (answer[0] == -2)
    return fmt::format("cannot become uid {} gid {}: {}", who.uid, who.gid,
                       std::strerror(answer[1]));
  if (answer[0] >= 0)
    return fmt::format("{}: {}", paths[static_cast<size_t>(answer[0])], std::strerror(answer[1]));
  return "";
}

}  // namespace clutch::runtime
