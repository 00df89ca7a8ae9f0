#include "common/credentials.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "clutch/config.hpp"

namespace clutch {

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

}  // namespace clutch
