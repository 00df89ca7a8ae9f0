// Log set-up shared by every process: one line per event on stderr, with time, role and pid, so
// the interleaved output of a cluster stays readable. CLUTCH_LOG_LEVEL (debug, info, warn, error)
// sets the level.
#pragma once

#include <string>

namespace clutch {

void init_logging(const std::string& label);

}  // namespace clutch
