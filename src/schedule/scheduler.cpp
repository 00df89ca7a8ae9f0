#include "schedule/scheduler.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <optional>

#include <unistd.h>

#include "common/host_name.hpp"
#include "common/off_loop_worker.hpp"
#include "common/units.hpp"
#include "mq/inbox_handler.hpp"
#include "runtime/metrics_access.hpp"
#include "runtime/reserved_scope.hpp"
#include "schedule/cron.hpp"
#include "schedule/tick_lock.hpp"

namespace clutch::schedule {
namespace {

using Millis = std::chrono::milliseconds;
using SystemClock = std::chrono::system_clock;

constexpr std::string_view kRunPrefix = "schedule:run:";
constexpr std::string_view kListAction = "schedule:list";
constexpr std::string_view kRunNowAction = "schedule:run-now";
constexpr uint64_t kMaxQueuedTicks = 16;
// How long an exactly-once job's inbox remembers a tick (a hand-over comes within seconds).
constexpr std::chrono::hours kTickRetention{24 * 7};
using mq::InboxKey;
using mq::InboxOutcome;

// Cluster scope: how often an agent says it is alive and audits other instances' ticks, and how
// long a silent agent counts as alive (a few renewals, so one slow answer is not a death).
constexpr Millis kAuditEvery{1000};
constexpr Millis kAliveFor{3000};

std::string describe(const JobOptions& o) {
  return o.cron.empty() ? "every " + o.interval : "cron '" + o.cron + "'";
}

// The agent's view of one job.
struct Job {
  JobOptions options;
  std::optional<CronExpression> cron;
  std::optional<TimeZone> zone;
  Millis interval{0};
  bool running = false;
  std::deque<uint64_t> queued;  // ticks waiting for the running one (overlap = queue), oldest first
  uint64_t ticks = 0, current_run = 0;
  uint64_t running_tick = 0;  // the tick of the run under way
  std::time_t next_fire = 0;  // cron only
  SystemClock::time_point next_interval_fire{};
  // For clutchctl jobs and the metrics.
  uint64_t runs_ok = 0, runs_failed = 0, timeouts = 0, skipped = 0;
  SystemClock::time_point last_start{};
  std::chrono::steady_clock::time_point run_started{};
  int64_t last_duration_ms = -1;
  std::string last_result;  // "ok", "failed: ...", "timeout", "sent to every worker"
  int last_worker = 0;
  // Told when the running tick ends (clutchctl jobs run).
  std::vector<std::function<void(nlohmann::json)>> run_waiters;
  // Cluster scope: the lock, used only on lock_worker's thread, so that a Redis that hangs
  // delays a claim, never the agent's loop.
  std::shared_ptr<TickLock> lock;
  std::unique_ptr<OffLoopWorker> lock_worker;
  uint64_t run_elsewhere = 0;  // cluster scope: ticks another instance claimed
  // Cluster scope: claims in flight on lock_worker (more than two means the broker is slow).
  std::size_t claims_pending = 0;
  bool audit_pending = false;  // an audit is queued or running on lock_worker
  uint64_t lost = 0;           // ticks whose claimer died before they ended, as reported here
  Counter* skipped_counter = nullptr;
  Counter* lost_counter = nullptr;
  Counter* timeout_counter = nullptr;
};

using RunDone = std::function<void(nlohmann::json)>;

class Clock : public std::enable_shared_from_this<Clock> {
 public:
  explicit Clock(Context& ctx) : ctx_(ctx) {}

  void add(const JobOptions& options) {
    auto job = std::make_shared<Job>();
    job->options = options;
    if (!options.cron.empty()) {
      job->cron = parse_cron(options.cron);
      job->zone.emplace(options.time_zone);
    } else if (!options.interval.empty()) {
      job->interval = *parse_duration(options.interval);
    }
    if (options.scope == JobScope::kCluster) {
      job->lock = std::make_shared<TickLock>(options.lock_url);
      Context* ctx = &ctx_;
      job->lock_worker = std::make_unique<OffLoopWorker>(
          [ctx](OffLoopWorker::Completion fn) { ctx->post(std::move(fn)); });
    }
    job->lost_counter = &detail::MetricsAccess::counter(
        ctx_.metrics(), "clutch_schedule_lost_total",
        "Cluster ticks claimed by an instance that died before they ended (reported once).",
        {{"job", options.name}});
    using A = detail::MetricsAccess;
    job->skipped_counter =
        &A::counter(ctx_.metrics(), "clutch_schedule_skipped_total",
                    "Ticks not run: the previous run was still going, or too many queued.",
                    {{"job", options.name}});
    job->timeout_counter =
        &A::counter(ctx_.metrics(), "clutch_schedule_timeouts_total",
                    "Runs still going after the job's timeout.", {{"job", options.name}});
    jobs_.push_back(job);
  }

  // clutchctl jobs and clutchctl jobs run NAME, through the master.
  void add_operator_commands(runtime::OperatorCommands& commands) {
    auto self = shared_from_this();
    commands.add("jobs", [self](const nlohmann::json&, runtime::OperatorCommands::Reply reply) {
      reply({{"jobs", self->list()}});
    });
    commands.add("job-run",
                 [self](const nlohmann::json& request, runtime::OperatorCommands::Reply reply) {
                   std::string name = request.value("name", "");
                   for (auto& job : self->jobs_) {
                     if (job->options.name != name) continue;
                     return self->run(*job, ++job->ticks, "clutchctl", reply);
                   }
                   reply({{"ok", false}, {"error", fmt::format("no job named '{}'", name)}});
                 });
  }

  void start() {
    auto self = shared_from_this();
    detail::ReservedScope reserved(ctx_.messenger());
    ctx_.messenger().on(kListAction, [self](const Message& m) { m.reply(self->list().dump()); });
    ctx_.messenger().on(kRunNowAction, [self](const Message& m) {
      for (auto& job : self->jobs_) {
        if (job->options.name == m.data()) {
          self->tick(*job, "run now");
          return m.reply("");
        }
      }
      throw std::runtime_error(fmt::format("no job named '{}'", m.data()));
    });
    ctx_.on_ready([self] {
      if (self->ctx_.replacement()) {
        spdlog::warn(
            "agent restarted: schedule ticks due while no agent ran are not replayed, "
            "and immediate jobs do not run again");
      }
      for (auto& job : self->jobs_) {
        if (job->options.disable) continue;
        if (job->options.immediate && !self->ctx_.replacement()) self->tick(*job, "immediate");
        if (!job->cron && job->interval.count() == 0) continue;  // a run-once job
        self->arm(job);
        if (job->lock) self->watch_cluster(job);
      }
    });
  }

 private:
  void arm(const std::shared_ptr<Job>& job) {
    auto self = shared_from_this();
    if (!job->cron && job->lock) {
      // Cluster scope: fire on multiples of the interval since the epoch, so that every
      // instance's tick N is the same instant and claims the same key.
      auto period = job->interval.count();
      auto now = std::chrono::duration_cast<Millis>(SystemClock::now().time_since_epoch()).count();
      int64_t slot = now / period + 1;
      job->next_interval_fire = SystemClock::time_point(Millis(slot * period));
      ctx_.set_timeout(Millis(slot * period - now), [self, job, slot] {
        self->claim_then(job, fmt::format("{}", slot), "interval");
        self->arm(job);
      });
      return;
    }
    if (!job->cron) {
      job->next_interval_fire = SystemClock::now() + job->interval;
      ctx_.set_interval(job->interval, [self, job] {
        job->next_interval_fire = SystemClock::now() + job->interval;
        self->tick(*job, "interval");
      });
      return;
    }
    std::time_t after = job->next_fire != 0 ? job->next_fire : std::time(nullptr);
    auto next = next_fire(*job->cron, *job->zone, after);
    if (!next) {
      spdlog::warn("job {}: {} never fires again", job->options.name, describe(job->options));
      return;
    }
    job->next_fire = *next;
    auto due = SystemClock::from_time_t(*next);
    auto delay = std::chrono::duration_cast<Millis>(due - SystemClock::now());
    std::time_t fire = *next;
    ctx_.set_timeout(std::max(delay, Millis(0)), [self, job, fire] {
      if (job->lock)
        self->claim_then(job, fmt::format("{}", fire), "cron");
      else
        self->tick(*job, "cron");
      self->arm(job);
    });
  }

  // This agent, as named in the claims it makes: unique across hosts and across its own restarts
  // (a restarted agent does not know what its predecessor claimed).
  const std::string& owner() {
    if (owner_.empty()) {
      owner_ = fmt::format("{}/{}/{}", host_name(), ctx_.master_pid(), ctx_.pid());
    }
    return owner_;
  }

  // Cluster scope: claims the tick named `id` (the same name in every instance) on the lock's
  // thread, and runs it here if this instance won it.
  void claim_then(const std::shared_ptr<Job>& job, std::string id, const char* why) {
    if (job->claims_pending >= 2) {
      // The broker has not answered the claims of earlier ticks: do not pile more behind them.
      return skip_unclaimed(*job, id, "the lock's Redis has not answered the earlier claims");
    }
    ++job->claims_pending;
    std::string key = tick_key(*job, id);
    std::weak_ptr<Clock> weak = shared_from_this();
    job->lock_worker->run([weak, job, lock = job->lock, key, owner = owner(), ttl = claim_ttl(*job),
                           id = std::move(id), why]() -> OffLoopWorker::Completion {
      std::string error;
      // Alive before claiming: an auditor must never find our fresh claim with no live owner.
      TickLock::Claim claim = lock->keep_alive(owner, kAliveFor, error)
                                  ? lock->claim(job->options.name, key, owner, ttl, error)
                                  : TickLock::Claim::kUnavailable;
      return [weak, job, claim, key, id, error, why] {
        auto self = weak.lock();
        if (!self) return;
        --job->claims_pending;
        switch (claim) {
          case TickLock::Claim::kOurs:
            return self->run(*job, ++job->ticks, why,
                             [weak, job, key](const nlohmann::json& outcome) {
                               if (auto self = weak.lock()) self->mark_done(job, key, outcome);
                             });
          case TickLock::Claim::kTheirs:
            ++job->run_elsewhere;
            spdlog::debug("job {}: tick {} is another instance's", job->options.name, id);
            return;
          case TickLock::Claim::kUnavailable:
            return self->skip_unclaimed(*job, id, error);
        }
      };
    });
  }

  static std::string tick_key(const Job& job, const std::string& id) {
    return fmt::format("clutch:tick:{}:{}", job.options.name, id);
  }
  // Kept well past the tick, so that clocks a little apart still find it claimed.
  static Millis claim_ttl(const Job& job) { return std::max(Millis(60'000), job.interval * 2); }

  // Tells the other instances how our claimed tick ended, so that they do not report it lost.
  void mark_done(const std::shared_ptr<Job>& job, const std::string& key,
                 const nlohmann::json& outcome) {
    std::string said = outcome.value("ok", false) ? outcome.value("outcome", std::string("ok"))
                                                  : outcome.value("error", std::string("failed"));
    job->lock_worker->run([job, lock = job->lock, key, said, owner = owner(),
                           ttl = claim_ttl(*job)]() -> OffLoopWorker::Completion {
      std::string error;
      if (lock->mark_done(job->options.name, key, owner, said, ttl, error)) return nullptr;
      return [job, key, error] {
        spdlog::warn(
            "job {}: could not record that {} ended ({}); another instance may report it "
            "lost",
            job->options.name, key, error);
      };
    });
  }

  // Cluster scope, every second: renews this agent's liveness and reports the ticks claimed by
  // instances that died before those ticks ended (TickLock::find_lost).
  void watch_cluster(const std::shared_ptr<Job>& job) {
    std::weak_ptr<Clock> weak = shared_from_this();
    ctx_.set_interval(kAuditEvery, [weak, job] {
      auto self = weak.lock();
      // One audit at a time, queued behind the claims (not skipped while they run: on a busy
      // machine the lock's thread is rarely idle, and audits must not starve).
      if (!self || job->audit_pending) return;
      job->audit_pending = true;
      job->lock_worker->run([weak, job, lock = job->lock, owner = self->owner(),
                             ttl = claim_ttl(*job)]() -> OffLoopWorker::Completion {
        std::string error;
        std::vector<TickLock::LostTick> lost;
        // Without a live key of our own, audit nothing (the claims will say why Redis fails).
        if (lock->keep_alive(owner, kAliveFor, error))
          lock->find_lost(job->options.name, owner, ttl, lost, error);
        return [weak, job, lost = std::move(lost)] {
          job->audit_pending = false;
          if (!weak.lock()) return;
          for (const auto& tick : lost) {
            ++job->lost;
            job->lost_counter->inc();
            spdlog::error(
                "job {}: tick {} was claimed by {}, which stopped before the tick ended; it may "
                "not have run (reported once across the cluster)",
                job->options.name, tick.key, tick.owner);
          }
        };
      });
    });
  }

  void skip_unclaimed(Job& job, const std::string& id, const std::string& error) {
    // Never run unclaimed: another instance may be running it.
    ++job.skipped;
    job.skipped_counter->inc();
    spdlog::error("job {}: tick {} skipped: cannot claim it ({})", job.options.name, id, error);
  }

  void tick(Job& job, const char* why) { run(job, ++job.ticks, why); }

  // Runs tick number `tick` now, or skips or queues it behind the running one; a queued tick
  // keeps its number, so each number names one run in the logs.
  // `done` (if given) is told how the tick ended: run, failed, skipped or queued.
  void run(Job& job, uint64_t tick, const char* why, RunDone done = nullptr) {
    std::string action = std::string(kRunPrefix) + job.options.name;
    auto tell = [&](nlohmann::json outcome) {
      outcome["tick"] = tick;
      if (done) done(std::move(outcome));
    };
    if (job.options.type == JobType::kAll) {
      try {
        detail::ReservedScope reserved(ctx_.messenger());
        ctx_.messenger().send_to_app(action, std::to_string(tick));
        job.last_start = SystemClock::now();
        job.last_result = "sent to every worker";
        tell({{"ok", true}, {"outcome", "sent to every worker"}});
      } catch (const std::exception& e) {
        spdlog::error("job {}: tick {} not sent to the workers: {}", job.options.name, tick,
                      e.what());
        tell({{"ok", false}, {"error", e.what()}});
      }
      return;
    }
    if (job.running) {
      std::string skipped;
      if (job.options.overlap == Overlap::kSkip) {
        // The master holds a tick sent while no worker lives until one is ready: that run has
        // not started, and saying it "is still going" sends the reader after a slow handler.
        skipped = ctx_.messenger().workers().empty()
                      ? fmt::format("no worker is alive (tick {} waits for one)", job.running_tick)
                      : "the previous run is still going";
      } else if (job.queued.size() >= kMaxQueuedTicks) {
        // Bounded: a job that is always slower than its period must not pile up runs forever.
        skipped = fmt::format("{} ticks already queued", kMaxQueuedTicks);
      }
      if (!skipped.empty()) {
        spdlog::warn("job {}: tick {} skipped: {}", job.options.name, tick, skipped);
        ++job.skipped;
        job.skipped_counter->inc();
        return tell({{"ok", false}, {"error", "skipped: " + skipped}});
      }
      job.queued.push_back(tick);
      spdlog::info("job {}: tick {} queued behind the running one", job.options.name, tick);
      return tell({{"ok", true}, {"outcome", "queued behind the running one"}});
    }
    uint64_t run = job.current_run + 1;
    auto self = shared_from_this();
    Job* j = &job;
    spdlog::debug("job {}: tick {} ({})", job.options.name, tick, why);
    try {
      detail::ReservedScope reserved(ctx_.messenger());
      ctx_.messenger().send_random(
          action, std::to_string(tick), [self, j, run, tick](const AckResult& r) {
            if (!r.ok) {
              spdlog::error("job {}: tick {} failed on worker {}: {}", j->options.name, tick,
                            r.handled_by, r.error);
            }
            if (j->current_run != run) return;  // timed out earlier; already reported
            self->finished(*j, tick, r.ok ? "ok" : "failed: " + r.error, r.handled_by);
          });
    } catch (const std::exception& e) {
      // Not sent, so not running: the next tick tries again.
      spdlog::error("job {}: tick {} not handed to a worker: {}", job.options.name, tick, e.what());
      return tell({{"ok", false}, {"error", e.what()}});
    }
    job.last_start = SystemClock::now();
    job.run_started = std::chrono::steady_clock::now();
    if (done)
      job.run_waiters.push_back([done, tick](nlohmann::json outcome) {
        outcome["tick"] = tick;
        done(std::move(outcome));
      });
    // Marked only once the send is made: a send that throws must not leave the job "running"
    // with no ack ever coming.
    job.running = true;
    job.current_run = run;
    job.running_tick = tick;
    if (job.options.timeout.count() > 0) {
      ctx_.set_timeout(job.options.timeout, [self, j, run, tick] {
        if (!j->running || j->current_run != run) return;
        spdlog::error("job {}: tick {} still running after its timeout ({} ms)", j->options.name,
                      tick, j->options.timeout.count());
        ++j->current_run;  // the late ack will not count
        ++j->timeouts;
        j->timeout_counter->inc();
        self->finished(*j, tick, "timeout", 0);
      });
    }
  }

  void finished(Job& job, uint64_t tick, const std::string& result, int worker) {
    job.running = false;
    job.last_duration_ms =
        std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - job.run_started)
            .count();
    job.last_result = result;
    job.last_worker = worker;
    if (result == "ok")
      ++job.runs_ok;
    else if (result != "timeout")
      ++job.runs_failed;
    nlohmann::json outcome = {{"ok", result == "ok"},
                              {"tick", tick},
                              {"worker", worker},
                              {"duration_ms", job.last_duration_ms}};
    if (result != "ok") outcome["error"] = result;
    for (auto& waiter : std::exchange(job.run_waiters, {})) waiter(outcome);
    if (!job.queued.empty()) {
      uint64_t next = job.queued.front();
      job.queued.pop_front();
      run(job, next, "queued");
    }
  }

  nlohmann::json list() const {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& job : jobs_) {
      std::string next;
      if (!job->options.disable) {
        if (job->cron && job->next_fire != 0)
          next = format_iso8601(job->next_fire, *job->zone);
        else if (!job->cron && job->interval.count() > 0)
          next = format_iso8601(SystemClock::to_time_t(job->next_interval_fire), TimeZone());
      }
      out.push_back({{"name", job->options.name},
                     {"schedule", !job->options.cron.empty()       ? job->options.cron
                                  : !job->options.interval.empty() ? job->options.interval
                                                                   : std::string("once at start")},
                     {"next_fire", next},
                     {"running", job->running},
                     {"disabled", job->options.disable},
                     {"type", job->options.type == JobType::kAll ? "all" : "worker"},
                     {"last_run", job->last_start == SystemClock::time_point{}
                                      ? ""
                                      : format_iso8601(SystemClock::to_time_t(job->last_start),
                                                       job->zone ? *job->zone : TimeZone())},
                     {"last_result", job->last_result},
                     {"last_duration_ms", job->last_duration_ms},
                     {"last_worker", job->last_worker},
                     {"runs_ok", job->runs_ok},
                     {"runs_failed", job->runs_failed},
                     {"timeouts", job->timeouts},
                     {"skipped", job->skipped},
                     {"queued", job->queued.size()},
                     {"scope", job->lock ? "cluster" : "instance"},
                     {"run_elsewhere", job->run_elsewhere},
                     {"lost", job->lost}});
    }
    return out;
  }

  Context& ctx_;
  std::vector<std::shared_ptr<Job>> jobs_;
  std::string owner_;
};

}  // namespace

void validate_job(const JobOptions& o) {
  auto fail = [&](const std::string& why) {
    throw ConfigError(fmt::format("schedule: job '{}': {}", o.name, why));
  };
  if (o.name.empty()) fail("a job needs a name");
  if (!o.cron.empty() && !o.interval.empty()) fail("set one of cron and interval, not both");
  if (o.cron.empty() && o.interval.empty() && !o.immediate)
    fail("set cron or interval, or immediate = true alone for a job that runs once at start");
  try {
    if (!o.cron.empty()) {
      parse_cron(o.cron);
      TimeZone zone(o.time_zone);
    }
  } catch (const CronError& e) {
    fail(e.what());
  }
  if (o.scope == JobScope::kCluster) {
    if (o.lock_url.rfind("redis://", 0) != 0)
      fail("scope = cluster needs lock_url = \"redis://HOST:PORT\", shared by every instance");
    try {
      TickLock check(o.lock_url);
    } catch (const ConfigError& e) {
      fail(e.what());
    }
  }
  if (!o.interval.empty()) {
    auto d = parse_duration(o.interval);
    if (!d || d->count() <= 0)
      fail(fmt::format("bad interval '{}': expected e.g. 500ms, 5s, 1m", o.interval));
  }
}

void install_agent_clock(Context& ctx, const JobList& jobs, runtime::OperatorCommands* commands) {
  auto clock = std::make_shared<Clock>(ctx);
  for (const JobDeclaration& job : jobs) clock->add(job.options);
  // Registered with no jobs too, so that clutchctl jobs says "none" rather than "no such command".
  if (commands != nullptr) clock->add_operator_commands(*commands);
  if (jobs.empty()) return;
  clock->start();
}

void install_worker_runners(Context& ctx, const JobList& jobs) {
  using A = detail::MetricsAccess;
  for (const JobDeclaration& job : jobs) {
    const JobOptions& options = job.options;
    std::string name = options.name;
    JobTask run = job.task;
    std::shared_ptr<mq::ExactlyOnceRunner> once;
    if (job.exactly_once_task) {
      once = mq::ExactlyOnceRunner::open(ctx, options.inbox, "job " + name, kTickRetention);
      run = nullptr;
    }
    ExactlyOnceJobTask run_once = job.exactly_once_task;
    const char* runs_help = "Runs of a job, by result (counted by the worker that ran it).";
    Counter* ok = &A::counter(ctx.metrics(), "clutch_schedule_runs_total", runs_help,
                              {{"job", name}, {"result", "ok"}});
    Counter* failed = &A::counter(ctx.metrics(), "clutch_schedule_runs_total", runs_help,
                                  {{"job", name}, {"result", "failed"}});
    Histogram* duration = &A::histogram(ctx.metrics(), "clutch_schedule_run_duration_seconds",
                                        "How long a job's runs took, in seconds.",
                                        {0.01, 0.1, 0.5, 1, 5, 30, 60, 300, 1800}, {{"job", name}});
    detail::ReservedScope reserved(ctx.messenger());
    ctx.messenger().on(std::string(kRunPrefix) + name, [&ctx, name, run, once, run_once, ok, failed,
                                                        duration](const Message& m) {
      auto started = std::chrono::steady_clock::now();
      auto seconds = [&] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      };
      try {
        if (once) {
          // The tick's number is its agent's: named with the agent (host, master, pid), it is
          // the same on the master's hand-over to another worker and new for a new agent.
          InboxKey key{
              "schedule", name,
              fmt::format("{}/{}/{}/{}", host_name(), ctx.master_pid(), m.sender().pid, m.data())};
          if (once->run(key, [&](Transaction& tx) { run_once(ctx, tx); }) ==
              InboxOutcome::kAlreadyDone) {
            spdlog::info("job {}: tick {} is already done (the inbox has it): not run again", name,
                         m.data());
            return;
          }
        } else {
          run(ctx);
        }
      } catch (const std::exception& e) {
        double took = seconds();
        failed->inc();
        duration->observe(took);
        spdlog::error("job {}: tick {} failed after {} ms: {}", name, m.data(),
                      static_cast<long long>(took * 1000), e.what());
        throw;
      } catch (...) {
        failed->inc();
        duration->observe(seconds());
        throw;
      }
      double took = seconds();
      ok->inc();
      duration->observe(took);
      spdlog::info("job {}: tick {} ok in {} ms", name, m.data(),
                   static_cast<long long>(took * 1000));
    });
  }
}

std::unique_ptr<runtime::Component> component(JobList jobs) {
  return runtime::make_component(std::move(jobs), &install_agent_clock, &install_worker_runners);
}

}  // namespace clutch::schedule

namespace clutch {

void list_jobs(Context& ctx, std::function<void(bool, const std::vector<JobStatus>&)> done) {
  detail::ReservedScope reserved(ctx.messenger());
  ctx.messenger().request(
      Target::agent(), schedule::kListAction, {}, std::chrono::seconds(5), [done](const Reply& r) {
        std::vector<JobStatus> jobs;
        if (!r.ok) return done(false, jobs);
        for (const auto& j : nlohmann::json::parse(r.data)) {
          jobs.push_back({j["name"], j["schedule"], j["next_fire"], j["running"], j["disabled"]});
        }
        done(true, jobs);
      });
}

void run_job_now(Context& ctx, const std::string& name,
                 std::function<void(bool, const std::string&)> done) {
  detail::ReservedScope reserved(ctx.messenger());
  ctx.messenger().request(Target::agent(), schedule::kRunNowAction, name, std::chrono::seconds(5),
                          [done](const Reply& r) { done(r.ok, r.error); });
}

}  // namespace clutch
