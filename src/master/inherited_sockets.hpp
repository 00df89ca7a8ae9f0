// Sockets a master is handed instead of binding them: systemd socket activation (LISTEN_PID,
// LISTEN_FDS, LISTEN_FDNAMES) and clutch's own master upgrade, which uses the same protocol to
// pass the listening sockets, the control and metrics sockets and a handshake channel to the new
// master. The sockets outlive the master that bound them, so no connection is refused meanwhile.
#pragma once

#include <string>
#include <vector>

namespace clutch::master {

// The names clutch gives the sockets it passes on (systemd's: any other name is a listener).
inline constexpr const char* kFdNameListen = "listen";
inline constexpr const char* kFdNameControl = "clutch-control";
inline constexpr const char* kFdNameMetrics = "clutch-metrics";
inline constexpr const char* kFdNameUpgrade = "clutch-upgrade";

struct InheritedSockets {
  std::vector<int> listen;  // TCP listeners, in the order given
  int control = -1, metrics = -1;
  int upgrade = -1;  // the handshake with the master that started this one
  bool any() const { return !listen.empty() || upgrade >= 0; }
};

// Takes the sockets passed to this process (none when LISTEN_PID is not ours), moves them above
// fd 10 close-on-exec and unsets the variables, so the children neither see nor inherit them.
// Throws std::runtime_error for a passed fd that is not a socket of the kind its name says.
InheritedSockets take_inherited_sockets();

// In a forked child about to exec: puts `fds` at 3, 4, ... (as sd_listen_fds expects), without
// close-on-exec, closes every other fd above stderr and sets LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES.
// Async-signal-safe apart from setenv (the master is single-threaded). False if a dup failed.
bool pass_sockets_in_child(const std::vector<int>& fds, const std::string& names);

}  // namespace clutch::master
