// A feature an app declares (schedules, queue consumers) that installs itself in each child after
// the app's own setup. The runtime starts children knowing only this interface; App::run hands it
// the features (src/app.cpp), so a new feature plugs in without touching the child's start-up.
#pragma once

#include <memory>
#include <vector>

#include "clutch/context.hpp"
#include "runtime/operator_commands.hpp"

namespace clutch::runtime {

class Component {
 public:
  virtual ~Component() = default;
  // In the agent: the once-per-host side (a clock, a queue's consumer). `commands` takes the
  // clutchctl commands the feature answers (jobs, queue).
  virtual void install_in_agent(Context& ctx, OperatorCommands& commands) = 0;
  // In each worker: the side that runs what the agent hands out.
  virtual void install_in_worker(Context& ctx) = 0;
};

using Components = std::vector<std::unique_ptr<Component>>;

}  // namespace clutch::runtime
