// Log set-up shared by every process: one line per event, with time, process and pid, so the
// interleaved output of a cluster stays readable. CLUTCH_LOG_LEVEL (debug, info, warn, error)
// sets the level. By default every process writes to stderr (journald keeps it); with log_dir,
// each role has its file (APP.master.log, APP.agent.log, APP.worker.log: workers share theirs,
// one whole line per write), reopened by reopen_logs() for logrotate. log_format "json" writes
// one JSON object a line.
#pragma once

#include <string>

namespace clutch {

struct LogOptions {
  std::string dir;              // empty: stderr
  std::string format = "text";  // "text" or "json"
  std::string file_name;        // the file in dir, e.g. "orders.worker.log"
};

// `label` names the process in each line ("orders worker 2"). Throws ConfigError when the file
// cannot be opened.
void init_logging(const std::string& label, const LogOptions& options = {});
// Opens the log file again (after logrotate moved it): the next line goes to a new file.
void reopen_logs();

}  // namespace clutch
