// Scheduled jobs: the agent keeps the clock (cron or interval) and hands each tick to exactly one
// worker with acknowledged delivery (a worker that dies mid-run has the tick run again on another
// worker, once), or to every worker.
//
//   app.schedule({.name = "report", .cron = "0 * * * *"}, [](clutch::Context& ctx) { ... });
//   app.schedule({.name = "sweep", .interval = "30s", .type = clutch::JobType::kAll}, ...);
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "clutch/context.hpp"

namespace clutch {

class Transaction;  // clutch/mq.hpp

enum class JobType { kWorker, kAll };  // one worker per tick, or every worker
enum class Overlap { kSkip, kQueue };  // a tick while the previous run goes on: skip or queue
// Whose tick: this instance's (every clutch instance runs it), or the cluster's (one instance of
// all those sharing `lock_url` runs each tick; intervals are then aligned to the epoch so that
// every instance names a tick alike).
enum class JobScope { kInstance, kCluster };

struct JobOptions {
  std::string name;
  std::string cron;       // 5 or 6 fields (seconds first); or
  std::string interval;   // "500ms", "5s", "1m" (a bare number is milliseconds)
  std::string time_zone;  // IANA name for cron; "" = local
  JobType type = JobType::kWorker;
  // Also run once when the cluster is first ready. Alone (no cron, no interval): a job that runs
  // once at start, as egg-schedule's `immediate` without a schedule.
  bool immediate = false;
  bool disable = false;                  // declared but never run
  std::chrono::milliseconds timeout{0};  // a run not finished by then is reported (0: none)
  Overlap overlap = Overlap::kSkip;
  JobScope scope = JobScope::kInstance;
  std::string lock_url;  // kCluster: redis://HOST:PORT, the same for every instance
  // App::schedule_exactly_once: the database whose transaction each tick runs in (as
  // ConsumeOptions::inbox: "sqlite:PATH" or "postgres://..."); its clutch_inbox records the tick.
  std::string inbox;
};

using JobTask = std::function<void(Context&)>;
// A tick that runs in a transaction of `JobOptions::inbox` (App::schedule_exactly_once): its
// writes and the record of the tick commit together, so a tick the master hands to a second
// worker (the first died after its commit) is not run again.
using ExactlyOnceJobTask = std::function<void(Context&, Transaction&)>;

// One App::schedule declaration (the runtime's).
struct JobDeclaration {
  JobOptions options;
  JobTask task;  // or
  ExactlyOnceJobTask exactly_once_task;
};

// A job as the agent sees it (for listing).
struct JobStatus {
  std::string name;
  std::string schedule;   // the cron expression or the interval
  std::string next_fire;  // ISO-8601, "" when disabled
  bool running = false;
  bool disabled = false;
};

// From any agent or worker: the jobs and their next fire times, from the agent.
void list_jobs(Context& ctx, std::function<void(bool ok, const std::vector<JobStatus>&)> done);
// From any agent or worker: run `name` now (one tick, under the usual overlap policy).
void run_job_now(Context& ctx, const std::string& name,
                 std::function<void(bool ok, const std::string& error)> done);

}  // namespace clutch
