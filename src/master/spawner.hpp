// Starts a child: posix_spawn of the app's own binary with its role, its end of
// the messenger socketpair on fd 3 and the listening socket on fd 4, described in the environment.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace clutch::master {

inline constexpr int kChildIpcFd = 3;
inline constexpr int kChildListenFd = 4;

struct SpawnRequest {
  std::string role;       // "agent" or "worker"
  int worker_index = -1;  // the slot of a worker
  int listen_fd = -1;     // -1: none
  int listen_port = 0;
  std::string config_text;  // serialized resolved Config
  std::vector<std::string> argv;
  // The binary to run: the path the master was started from, read once at start, so a reload
  // after a deploy that replaced the file runs the new binary.
  std::string exe_path;
  bool replacement = false;  // started after the cluster was first ready
};

struct SpawnedChild {
  pid_t pid = -1;
  int ipc_fd = -1;  // the master's end of the socketpair
};

// Throws std::runtime_error when the process cannot be created.
SpawnedChild spawn_child(const SpawnRequest& request);

}  // namespace clutch::master
