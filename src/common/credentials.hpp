// Who the children run as (config user/group): looked up and checked once by the master before
// anything starts, and become by each child before the app's code runs. Used by master and
// runtime alike, so it lives below both.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace clutch {

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

}  // namespace clutch
