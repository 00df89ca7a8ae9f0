// A clutch application: one binary whose master starts one agent and N workers (fork + exec of
// itself), routes their messages, restarts what dies and stops them gracefully.
//
//   int main(int argc, char** argv) {
//     clutch::App app("hello");
//     app.agent([](clutch::Context& ctx) { ... });   // once per host: MQ, schedules
//     app.worker([](clutch::Context& ctx) { ... });  // N times: requests, handed-over work
//     return app.run(argc, argv);
//   }
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "clutch/context.hpp"
#include "clutch/mq.hpp"
#include "clutch/schedule.hpp"

namespace clutch {

using Setup = std::function<void(Context&)>;

class App {
 public:
  explicit App(std::string name);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // What the agent process does at start (register handlers, open connections, start timers).
  // Throwing fails the start (or, after it, the process, which is restarted).
  App& agent(Setup setup);
  // What each worker process does at start.
  App& worker(Setup setup);

  // Declares a scheduled job: the agent keeps its clock, workers run `task`. Throws ConfigError
  // (at declaration, in every process) for a bad cron expression, interval or zone.
  App& schedule(JobOptions options, JobTask task);
  // A `worker` job whose every tick runs in a transaction of `options.inbox`, as an exactly-once
  // consumer's messages do (clutch::Transaction: tx.sqlite() or tx.postgres(), tx.publish()):
  // a tick whose transaction committed is never run again, even when its worker died before the
  // agent heard that it ended and the master handed it to another worker.
  App& schedule_exactly_once(JobOptions options, ExactlyOnceJobTask task);

  // Consumes a queue once per host: the agent reads it, each message is handled by exactly one
  // worker's `handler`, and only then acknowledged to the queue (see clutch/mq.hpp).
  App& consume(ConsumeOptions options, QueueHandler handler);
  // The same with a coroutine: `[](clutch::Context& ctx, clutch::QueueMessage m) -> clutch::Task
  // { co_await ...; }`; acknowledged when it ends, failed if it throws.
  App& consume_async(ConsumeOptions options, AsyncQueueHandler handler);
  // Exactly-once effects: `handler` makes the message's writes in a transaction on the database
  // `options.inbox` names, which also records the message as done; a redelivered message that is
  // recorded (its worker, the agent, the master or the host died after the commit and before the
  // ack) is acknowledged without running again. See clutch::Transaction.
  //
  //   app.consume_exactly_once({.name = "orders", .url = "sqlite:queue.db",
  //                             .inbox = "sqlite:app.db"},
  //                            [](clutch::Context&, const clutch::QueueMessage& m,
  //                               clutch::Transaction& tx) { /* sqlite3_exec(tx.sqlite(), ...) */
  //                               });
  App& consume_exactly_once(ConsumeOptions options, ExactlyOnceHandler handler);

  // In the master: parses --workers/--port/--config/--help/--version, runs the cluster and returns
  // the exit code (0 graceful stop, 1 start failed, 2 bad configuration, 3 forced stop).
  // In a child: runs the agent or worker setup and its loop until it is told to stop.
  int run(int argc, char** argv);

 private:
  App& declare_consumer(ConsumerDeclaration declaration);
  std::string name_;
  Setup agent_setup_, worker_setup_;
  std::vector<JobDeclaration> jobs_;
  std::vector<ConsumerDeclaration> consumers_;
  std::string declaration_error_;
};

}  // namespace clutch
