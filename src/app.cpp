#include "clutch/app.hpp"

#include "master/master_main.hpp"
#include "runtime/child_main.hpp"

namespace clutch {

App::App(std::string name) : name_(std::move(name)) {}
App::~App() = default;

App& App::agent(Setup setup) {
  agent_setup_ = std::move(setup);
  return *this;
}

App& App::worker(Setup setup) {
  worker_setup_ = std::move(setup);
  return *this;
}

int App::run(int argc, char** argv) {
  // The master never calls the setups: user code runs only in the children.
  if (runtime::started_by_master()) return runtime::child_main(name_, agent_setup_, worker_setup_);
  return master::master_main(argc, argv, name_);
}

}  // namespace clutch
