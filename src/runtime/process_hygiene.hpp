// What a child does at start so that nothing it inherited from the master leaks into the
// programs it runs, and nothing it starts outlives the cluster.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

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

namespace clutch::runtime {

// The uid and gid a child should run as for config user/group; throws ConfigError naming an
// unknown user or group, or a change that needs root when not root.
struct Credentials {
  uid_t uid;
  gid_t gid;
};
Credentials resolve_credentials(const std::string& user, const std::string& group);

// Becomes `who` (supplementary groups dropped first, then gid, then uid; checked): the app's code
// never runs as root. Throws std::runtime_error if the kernel refuses.
void drop_privileges(const Credentials& who);

// Whether `who` can append to each of `paths` (creating what is missing, as the children would):
// a short-lived process becomes `who` and opens each one, so permissions, ACLs and read-only
// mounts are judged by the kernel exactly as the children will meet them, not as root sees them.
// Returns "" when all can be opened, else "PATH: REASON" for the first that cannot.
std::string first_unwritable_as(const Credentials& who, const std::vector<std::string>& paths);

}  // namespace clutch::runtime
