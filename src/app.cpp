#include "clutch/app.hpp"

#include <iostream>

#include "master/master_main.hpp"
#include "master/supervisor.hpp"
#include "mq/consumer.hpp"
#include "mq/inbox_handler.hpp"
#include "runtime/child_main.hpp"
#include "schedule/scheduler.hpp"

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

App& App::schedule(JobOptions options, JobTask task) {
  try {
    schedule::validate_job(options);
  } catch (const ConfigError& e) {
    if (declaration_error_.empty()) declaration_error_ = e.what();
  }
  jobs_.push_back({std::move(options), std::move(task), nullptr});
  return *this;
}

App& App::schedule_exactly_once(JobOptions options, ExactlyOnceJobTask task) {
  std::string why = mq::inbox_spec_error(options.inbox);
  if (options.type != JobType::kWorker) why = "an exactly-once job is of type worker";
  if (!why.empty() && declaration_error_.empty())
    declaration_error_ = "schedule: job '" + options.name + "': " + why;
  try {
    schedule::validate_job(options);
  } catch (const ConfigError& e) {
    if (declaration_error_.empty()) declaration_error_ = e.what();
  }
  jobs_.push_back({std::move(options), nullptr, std::move(task)});
  return *this;
}

App& App::consume(ConsumeOptions options, QueueHandler handler) {
  return declare_consumer({std::move(options), std::move(handler), nullptr, nullptr});
}

App& App::consume_async(ConsumeOptions options, AsyncQueueHandler handler) {
  return declare_consumer({std::move(options), nullptr, std::move(handler), nullptr});
}

App& App::consume_exactly_once(ConsumeOptions options, ExactlyOnceHandler handler) {
  return declare_consumer({std::move(options), nullptr, nullptr, std::move(handler)});
}

App& App::declare_consumer(ConsumerDeclaration declaration) {
  const ConsumeOptions& options = declaration.options;
  if (options.name.empty() && declaration_error_.empty())
    declaration_error_ = "consume: a consumer needs a name";
  if (options.url.empty() && declaration_error_.empty()) {
    declaration_error_ =
        "consume '" + options.name + "': a queue URL is needed (e.g. sqlite:queue.db)";
  }
  if (declaration_error_.empty())
    declaration_error_ =
        mq::inbox_declaration_error(options, bool(declaration.exactly_once_handler));
  consumers_.push_back(std::move(declaration));
  return *this;
}

int App::run(int argc, char** argv) {
  if (!declaration_error_.empty()) {
    std::cerr << name_ << ": " << declaration_error_ << std::endl;
    return master::kExitUsage;
  }
  // The master never calls the setups: user code runs only in the children.
  if (runtime::started_by_master()) {
    runtime::Components components;
    components.push_back(schedule::component(jobs_));
    components.push_back(mq::component(consumers_));
    return runtime::child_main(name_, agent_setup_, worker_setup_, components);
  }
  return master::master_main(argc, argv, name_);
}

}  // namespace clutch
