// What a child does at start so that nothing it inherited from the master leaks into the
// programs it runs, and nothing it starts outlives the cluster.
#pragma once

#include <sys/types.h>

namespace clutch::runtime {

// The channel and the listening socket arrive without FD_CLOEXEC (they had to survive the
// exec), and a library of the master's may have left one open by accident: every descriptor above
// `highest_kept` gets FD_CLOEXEC, so a program the app runs (system(), popen()) keeps neither the
// port nor the master's channel.
void close_on_exec_above(int highest_kept);

// Removes every CLUTCH_INTERNAL_* variable: read once at start, they are nobody else's business
// (and a grandchild that saw CLUTCH_INTERNAL_ROLE would take itself for a clutch child).
void scrub_internal_environment();

// Dies with the master, and takes this process's group (its descendants, unless one of them
// left it with setsid/setpgid) along: the master's death sends a signal whose handler SIGKILLs
// the whole group. Returns false if the master is already gone.
bool die_with_master(pid_t master_pid);

}  // namespace clutch::runtime
