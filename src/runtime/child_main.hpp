// The life of an agent or worker process, from exec to exit: connect to the master, run the
// app's setup, report ready, serve messages, stop gracefully.
#pragma once

#include <string>

#include "clutch/app.hpp"
#include "runtime/component.hpp"

namespace clutch::runtime {

// True when this process was started by a clutch master as a child.
bool started_by_master();
// Runs the child; returns its exit code.
// `components` install themselves after the app's setup (schedules, queue consumers).
int child_main(const std::string& app_name, const Setup& agent_setup, const Setup& worker_setup,
               const Components& components);

}  // namespace clutch::runtime
