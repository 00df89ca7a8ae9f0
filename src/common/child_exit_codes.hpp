// Exit codes a child (agent or worker) ends with that the master reads (beside kExitUncaught in
// runtime/uncaught.hpp).
#pragma once

namespace clutch {

// The app's setup threw ConfigError (a queue URL, a database or a table it cannot use): the
// master fails its start as for a bad configuration (its own exit code 2). EX_CONFIG.
inline constexpr int kExitBadSetup = 78;

}  // namespace clutch
