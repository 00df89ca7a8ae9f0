// A feature an app declares (schedules, queue consumers) that installs itself in each child after
// the app's own setup. The runtime starts children knowing only this interface; App::run hands it
// the features (src/app.cpp), so a new feature plugs in without touching the child's start-up.
#pragma once

#include <memory>
#include <utility>
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

// A feature whose two halves are plain functions of its declarations (the app's jobs, its
// consumers): `agent(ctx, declarations, commands)` and `worker(ctx, declarations)`.
template <typename Declarations>
std::unique_ptr<Component> make_component(Declarations declarations,
                                          void (*agent)(Context&, const Declarations&,
                                                        OperatorCommands*),
                                          void (*worker)(Context&, const Declarations&)) {
  class Feature final : public Component {
   public:
    Feature(Declarations d, decltype(agent) a, decltype(worker) w)
        : declarations_(std::move(d)), agent_(a), worker_(w) {}
    void install_in_agent(Context& ctx, OperatorCommands& commands) override {
      agent_(ctx, declarations_, &commands);
    }
    void install_in_worker(Context& ctx) override { worker_(ctx, declarations_); }

   private:
    Declarations declarations_;
    decltype(agent) agent_;
    decltype(worker) worker_;
  };
  return std::make_unique<Feature>(std::move(declarations), agent, worker);
}

}  // namespace clutch::runtime
