#include "master/spawner.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

extern char** environ;

namespace clutch::master {
namespace {

// Moves an fd above the ones children use, so dup2 onto 3/4 never meets an fd that is already
// there (dup2 onto itself would keep FD_CLOEXEC and the child would lose it at exec).
int move_high(int fd) {
  int high = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  if (high < 0) throw std::runtime_error(fmt::format("fcntl(F_DUPFD): {}", std::strerror(errno)));
  close(fd);
  return high;
}

std::vector<std::string> child_environment(const SpawnRequest& r) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "CLUTCH_INTERNAL_", 16) == 0) continue;
    env.emplace_back(*e);
  }
  env.push_back("CLUTCH_INTERNAL_ROLE=" + r.role);
  env.push_back("CLUTCH_INTERNAL_WORKER_INDEX=" + std::to_string(r.worker_index));
  env.push_back("CLUTCH_INTERNAL_IPC_FD=" + std::to_string(kChildIpcFd));
  env.push_back("CLUTCH_INTERNAL_MASTER_PID=" + std::to_string(getpid()));
  env.push_back("CLUTCH_INTERNAL_CONFIG=" + r.config_text);
  if (r.replacement) env.push_back("CLUTCH_INTERNAL_REPLACEMENT=1");
  if (r.listen_fd >= 0) {
    env.push_back("CLUTCH_INTERNAL_LISTEN_FD=" + std::to_string(kChildListenFd));
    env.push_back("CLUTCH_INTERNAL_PORT=" + std::to_string(r.listen_port));
  }
  return env;
}

}  // namespace

SpawnedChild spawn_child(const SpawnRequest& r) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    throw std::runtime_error(fmt::format("socketpair(): {}", std::strerror(errno)));
  }
  int master_end = pair[0], child_end = move_high(pair[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, child_end, kChildIpcFd);
  if (r.listen_fd >= 0) posix_spawn_file_actions_adddup2(&actions, r.listen_fd, kChildListenFd);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  // The child starts with default dispositions and nothing blocked, whatever the master set up.
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  // Each child leads its own process group, so that the master can take the child's
  // descendants with it when it exits (kill(-pid)), and a terminal's Ctrl-C reaches only the
  // master, which stops the children in order.
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);

  std::vector<std::string> env = child_environment(r);
  std::vector<char*> envp, argv;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = r.argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = -1;
  int rc = posix_spawn(&pid, r.exe_path.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(child_end);
  if (rc != 0) {
    close(master_end);
    throw std::runtime_error(fmt::format("cannot start {}: {}", r.role, std::strerror(rc)));
  }
  return SpawnedChild{pid, master_end};
}

}  // namespace clutch::master
