// Real-time signals clutch uses between the master and its children. glibc keeps the first few
// real-time signals for itself; SIGRTMIN is already past them.
#pragma once

#include <csignal>

namespace clutch {

// Sent to a child by the kernel when its master dies (PR_SET_PDEATHSIG): the child SIGKILLs its
// process group.
inline int master_death_signal() {
  return SIGRTMIN + 4;
}

// Sent by the master to a child whose loop is stuck: the child writes its backtrace to its log.
inline int hang_backtrace_signal() {
  return SIGRTMIN + 5;
}

}  // namespace clutch
