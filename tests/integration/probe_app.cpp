// probe: a clutch app whose behaviour the integration tests choose through PROBE_* environment
// variables, and which reports what each process sees as JSON lines appended to $PROBE_LOG
// (one write per line, O_APPEND, so lines from several processes never interleave).
#include <fcntl.h>
#include <fmt/format.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>
#include <clutch/app.hpp>
#include <clutch/coro.hpp>
#include <clutch/http.hpp>
#include <clutch/mq.hpp>
#include <clutch/schedule.hpp>

#include "ipc/frame.hpp"

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

void probe_spin_forever();

namespace {

std::string env(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atoi(v) : fallback;
}

void record(const std::string& json_fields) {
  static int fd =
      open(env("PROBE_LOG", "/dev/null").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  std::string line = fmt::format("{{\"pid\":{},{}}}\n", getpid(), json_fields);
  (void)!write(fd, line.data(), line.size());
}

std::string role_of(const clutch::Context& ctx) {
  return std::string(clutch::to_string(ctx.role()));
}

// What every process reports: start, ready, membership, and every message it is sent.
void common_setup(clutch::Context& ctx) {
  record(fmt::format(R"("ev":"start","role":"{}","slot":{},"replacement":{})", role_of(ctx),
                     ctx.worker_index(), ctx.replacement()));
  ctx.on_ready([&ctx] { record(fmt::format(R"("ev":"ready","role":"{}")", role_of(ctx))); });
  for (const char* action : {"b", "app", "others", "ag", "direct"}) {
    ctx.messenger().on(action, [&ctx, action](const clutch::Message& m) {
      record(fmt::format(R"("ev":"got","action":"{}","role":"{}","from":{},"from_role":"{}")",
                         action, role_of(ctx), m.sender().pid, clutch::to_string(m.sender().role)));
    });
  }
  ctx.messenger().on("probe:mark", [](const clutch::Message& m) {
    record(fmt::format(R"("ev":"mark","n":{})", m.data()));
  });
  ctx.messenger().on_error([](const clutch::DeliveryError& e) {
    record(fmt::format(R"("ev":"delivery-error","action":"{}")", e.action));
  });
  ctx.messenger().on_member([](const clutch::MemberEvent& e) {
    record(fmt::format(R"("ev":"member","of":"{}","member":{},"joined":{})",
                       clutch::to_string(e.role), e.pid, e.joined));
  });
  if (env("PROBE_PARITY") == "1") {
    // The reserved prefixes: a user handler cannot take the scheduler's ticks or a queue's
    // deliveries, nor send as them.
    for (const char* action : {"schedule:run:report", "mq:orders"}) {
      try {
        ctx.messenger().on(action, [](const clutch::Message&) {});
        record(fmt::format(R"("ev":"reserved-allowed","action":"{}")", action));
      } catch (const clutch::MessengerError& e) {
        record(
            fmt::format(R"("ev":"reserved-refused","action":"{}","error":"{}")", action, e.what()));
      }
    }
    try {
      ctx.messenger().send_to_agent("mq:orders", "x");
      record(R"("ev":"reserved-allowed","action":"send mq:orders")");
    } catch (const clutch::MessengerError& e) {
      record(R"("ev":"reserved-refused","action":"send mq:orders")");
    }
    ctx.on_ready([&ctx] {
      // egg's sendTo(master pid): clutch says why not.
      try {
        ctx.messenger().send_to(ctx.master_pid(), "hello", "");
      } catch (const clutch::MessengerError& e) {
        record(fmt::format(R"("ev":"master-refused","master":{},"error":"{}")", ctx.master_pid(),
                           e.what()));
      }
      // An exception from a timer: logged, or the process replaced (on_uncaught_exception).
      if (ctx.worker_index() == 0 && !ctx.replacement()) {
        ctx.set_timeout(std::chrono::milliseconds(10), [] {
          record(R"("ev":"throwing")");
          throw std::runtime_error("probe: a timer threw");
        });
      }
    });
  }
}

// Deterministic bytes of every value, and a checksum of them (FNV-1a), for the large-payload test.
std::string pattern(std::size_t size) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 2654435761u) >> 13);
  return out;
}

uint64_t checksum(std::string_view data) {
  uint64_t h = 14695981039346656037ull;
  for (char c : data) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

// PROBE_HANG_ROLE: that role's setup never returns (bounded at 60 s), while PROBE_HANG_FLAG
// exists (or always, without a flag): the master's startup_timeout must deal with it.
void maybe_hang(clutch::Context& ctx) {
  std::string flag = env("PROBE_HANG_FLAG");
  if (env("PROBE_HANG_ROLE") != role_of(ctx) || (!flag.empty() && !std::filesystem::exists(flag)))
    return;
  record(R"("ev":"hang")");
  std::this_thread::sleep_for(std::chrono::seconds(60));
}

// The coroutine forms end to end (PROBE_CORO=1): a request and its reply, an acknowledged
// send_random, a sleep, and a request whose replier dies before answering.
clutch::Task coroutine_story(clutch::Context& ctx) {
  namespace co = clutch::co;
  auto& m = ctx.messenger();
  clutch::Reply r = co_await co::request(m, clutch::Target::random_worker(), "echo", "hi",
                                         std::chrono::seconds(10));
  record(fmt::format(R"("ev":"coro-reply","ok":{},"data":"{}")", r.ok, r.data));
  clutch::AckResult a = co_await co::send_random(m, "coro-work", "job");
  record(fmt::format(R"("ev":"coro-ack","ok":{},"by":{})", a.ok, a.handled_by));
  auto before = std::chrono::steady_clock::now();
  co_await co::sleep(ctx, std::chrono::milliseconds(30));
  auto slept = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - before)
                   .count();
  record(fmt::format(R"("ev":"coro-slept","ms":{})", slept));
  int victim = m.workers().front();
  clutch::Reply dead = co_await co::request(m, clutch::Target::process(victim), "die-before-reply",
                                            "", std::chrono::seconds(30));
  record(fmt::format(R"("ev":"coro-dead-replier","ok":{},"error":"{}")", dead.ok, dead.error));
  throw std::runtime_error("probe: the coroutine's end throws");  // an uncaught exception
}

void agent_setup(clutch::Context& ctx) {
  common_setup(ctx);
  if (env("PROBE_CORO") == "1") ctx.on_ready([&ctx] { coroutine_story(ctx); });
  maybe_hang(ctx);
  auto& m = ctx.messenger();
  m.on("clutch:pids", [](const clutch::Message& msg) {
    record(fmt::format(R"("ev":"pids","workers":{})", msg.data()));
  });
  m.on("ask",
       [](const clutch::Message& msg) { msg.reply(fmt::format("answer to {}", msg.data())); });
  m.on("ask-later", [&ctx](const clutch::Message& msg) {
    // Answers after its own (simulated) I/O, from a timer.
    ctx.set_timeout(std::chrono::milliseconds(50),
                    [d = msg.defer()]() mutable { d.reply("later"); });
  });
  m.on("ask-big", [&ctx](const clutch::Message& msg) {
    msg.reply(std::string(ctx.config().max_message_size + 1, 'r'));
  });
  static std::vector<clutch::Deferred> never_answered;
  m.on("ask-never", [](const clutch::Message& msg) { never_answered.push_back(msg.defer()); });
  if (env("PROBE_MARKS") == "1") {
    // A test's proof event (Cluster.mark): the test writes a number into PROBE_LOG.mark, and the
    // agent broadcasts it through the master; every process logs it. The channels are FIFO, so
    // whatever the master sent a process before the mark was handled before the mark is logged:
    // a test proves that no duplicate came without sleeping in the hope it would show.
    auto last = std::make_shared<long>(0);
    ctx.set_interval(std::chrono::milliseconds(20), [&ctx, last] {
      std::FILE* f = std::fopen((env("PROBE_LOG") + ".mark").c_str(), "r");
      if (f == nullptr) return;
      long n = 0;
      if (std::fscanf(f, "%ld", &n) == 1 && n > *last) {
        *last = n;
        ctx.messenger().broadcast("probe:mark", std::to_string(n));
      }
      std::fclose(f);
    });
  }
  std::string scenario = env("PROBE_SCENARIO");
  int count = env_int("PROBE_COUNT", 10000);
  if (scenario == "early") {
    // Sent during the agent's setup, before any worker exists: held, never dropped.
    m.broadcast("b");
    m.send_to_app("app");
    m.send_to_others("others");
  }
  ctx.on_ready([&ctx, scenario, count] {
    auto& m = ctx.messenger();
    if (scenario == "random") {
      for (int i = 0; i < count; ++i) m.send_random("work", std::to_string(i));
    } else if (scenario == "acked") {
      // Paced so that the test's kills land while messages are in flight.
      int batch = env_int("PROBE_BATCH", 100);
      auto next = std::make_shared<int>(0);
      auto sent = std::make_shared<clutch::TimerId>(0);
      *sent = ctx.set_interval(std::chrono::milliseconds(env_int("PROBE_PACE_MS", 20)), [&ctx, next,
                                                                                         count,
                                                                                         batch,
                                                                                         sent] {
        for (int n = 0; n < batch && *next < count; ++n, ++*next) {
          int id = *next;
          ctx.messenger().send_random("work", std::to_string(id), [id](const clutch::AckResult& r) {
            record(fmt::format(R"("ev":"ack","id":{},"ok":{},"by":{})", id, r.ok, r.handled_by));
          });
        }
        if (*next >= count) ctx.cancel_timer(*sent);
      });
    } else if (scenario == "big") {
      // Payloads far over the relay's read chunk and high-water mark: each must arrive whole.
      for (std::size_t size :
           {std::size_t{100} << 10, std::size_t{3} << 20, std::size_t{20} << 20}) {
        std::string data = pattern(size);
        record(fmt::format(R"("ev":"big-sent","size":{},"sum":{})", size, checksum(data)));
        m.send_random("big", data, [size](const clutch::AckResult& r) {
          record(fmt::format(R"("ev":"big-ack","size":{},"ok":{})", size, r.ok));
        });
      }
      std::string everyone = pattern(std::size_t{5} << 20);
      record(fmt::format(R"("ev":"big-sent","size":{},"sum":{})", everyone.size(),
                         checksum(everyone)));
      m.send_to_app("big", everyone);
    } else if (scenario == "bigkill") {
      // One acknowledged 20 MiB message to a worker that reads it slowly: the test kills that
      // worker mid-read, and another must get it whole.
      std::string data = pattern(std::size_t{20} << 20);
      record(fmt::format(R"("ev":"big-sent","size":{},"sum":{})", data.size(), checksum(data)));
      m.send_random("bigslow", data, [](const clutch::AckResult& r) {
        record(fmt::format(R"("ev":"big-ack","ok":{},"by":{})", r.ok, r.handled_by));
      });
    } else if (scenario == "flood") {
      // 128 KiB (PROBE_FLOOD_KIB) to every worker, 2 per 5 ms, PROBE_COUNT in all: far past any
      // high-water mark.
      auto sent = std::make_shared<int>(0);
      auto timer = std::make_shared<clutch::TimerId>(0);
      *timer = ctx.set_interval(std::chrono::milliseconds(5), [&ctx, sent, timer, count] {
        static const std::string data(std::size_t(env_int("PROBE_FLOOD_KIB", 128)) * 1024, 'f');
        for (int n = 0; n < 2 && *sent < count; ++n, ++*sent)
          ctx.messenger().send_to_app("app", data);
        if (*sent >= count) ctx.cancel_timer(*timer);
      });
    } else if (scenario == "early") {
      m.send_to_app("direct");  // after everything sent early, on every FIFO path
    } else if (scenario == "routes") {
      m.broadcast("b");
      m.send_to_app("app");
      m.send_to_agent("ag");
    } else if (scenario == "spin") {
      m.send_random("spin");  // not acknowledged: the hung worker's replacement must not get it
    } else if (scenario == "slow") {
      m.send_random("slow", "", [](const clutch::AckResult& r) {
        record(fmt::format(R"("ev":"ack","id":0,"ok":{},"by":{})", r.ok, r.handled_by));
      });
    } else if (scenario == "ping") {
      auto n = std::make_shared<int>(0);
      ctx.set_interval(std::chrono::milliseconds(50),
                       [&ctx, n] { ctx.messenger().send_random("work", std::to_string((*n)++)); });
    }
  });
}

void worker_setup(clutch::Context& ctx) {
  common_setup(ctx);
  if (env("PROBE_CORO") == "1") {
    ctx.messenger().on("echo", [](const clutch::Message& m) { m.reply(m.data()); });
    ctx.messenger().on("coro-work", [](const clutch::Message&) {});
    ctx.messenger().on("die-before-reply", [](const clutch::Message&) {
      record(R"("ev":"dying")");
      _exit(9);
    });
  }
  maybe_hang(ctx);
  std::string fail_flag = env("PROBE_FAIL_FLAG");
  if (!fail_flag.empty() && std::filesystem::exists(fail_flag)) {
    throw std::runtime_error("probe: this build's workers fail at start (flag file present)");
  }
  if (env("PROBE_FAIL_WORKER") == "1" && ctx.worker_index() == 1) {
    // What the setup opened before it threw must still be closed: a hook that finishes later.
    ctx.on_stop([&ctx](std::function<void()> done) {
      ctx.set_timeout(std::chrono::milliseconds(20), [done] {
        record(R"("ev":"setup-stop-hook")");
        done();
      });
    });
    throw std::runtime_error("probe: worker setup failed on purpose");
  }
  std::string crash_file = env("PROBE_CRASH_FILE");
  if (!crash_file.empty() && ctx.worker_index() == 0 && std::filesystem::exists(crash_file)) {
    record(R"("ev":"crash-at-start")");
    _exit(3);
  }
  if (env("PROBE_IGNORE_TERM") == "1") signal(SIGTERM, SIG_IGN);
  if (env("PROBE_METRICS") == "1") {
    // Application metrics: one count per worker start, figures that merge by their own rules.
    auto& m = ctx.metrics();
    m.counter("probe_started_total", "Workers started.").inc();
    m.gauge("probe_worker_index", "The slot, per process.", {}, clutch::GaugeMerge::kPerProcess)
        .set(ctx.worker_index());
    m.gauge("probe_highest_slot", "The highest slot.", {}, clutch::GaugeMerge::kMax)
        .set(ctx.worker_index());
    m.histogram("probe_setup_seconds", "Setup time.", {0.01, 0.1}).observe(0.05);
    record(R"("ev":"metrics-registered")");
  }
  // A helper that cleans up on SIGTERM (writes "term" to the file), and one that ignores it;
  // both loop for at most 300 s.
  if (std::string marker = env("PROBE_HELPER_MARKER"); !marker.empty()) {
    std::string command = fmt::format(
        "sh -c 'trap \"echo term > {}; exit 0\" TERM; i=0; while [ $i -lt 3000 ]; do sleep 0.1; "
        "i=$((i+1)); done' >/dev/null 2>&1 & echo $!; "
        "sh -c 'trap \"\" TERM; i=0; while [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done' "
        ">/dev/null 2>&1 & echo $!",
        marker);
    FILE* out = popen(command.c_str(), "r");
    char first[32] = {}, second[32] = {};
    if (out != nullptr && fgets(first, sizeof first, out) != nullptr &&
        fgets(second, sizeof second, out) != nullptr) {
      record(fmt::format(R"("ev":"helpers","cleans_up":{},"ignores_term":{})", std::atoi(first),
                         std::atoi(second)));
    }
    if (out != nullptr) pclose(out);
  }
  if (env("PROBE_GRANDCHILD") == "1") {
    // A program the app runs in the background, as system("... &") would; bounded at 300 s.
    FILE* out = popen("sleep 300 >/dev/null 2>&1 & echo $!", "r");
    char line[32] = {};
    if (out != nullptr && fgets(line, sizeof line, out) != nullptr) {
      record(fmt::format(R"("ev":"grandchild","child":{})", std::atoi(line)));
    }
    if (out != nullptr) pclose(out);
  }
  if (env("PROBE_HTTP") == "1") {
    clutch::http::Router router;
    router.use([](clutch::http::Exchange ex, const std::function<void()>& next) {
      ex.on_send([](clutch::http::Response& r) { r.set_header("X-Probe", "1"); });
      next();
    });
    // A middleware that finishes its own I/O first: next() from a timer, after it returned.
    router.use([&ctx](clutch::http::Exchange ex, const std::function<void()>& next) {
      if (ex.request().path != "/late-mw") return next();
      ctx.set_timeout(std::chrono::milliseconds(10), [next] { next(); });
    });
    router.get("/late-mw", [](clutch::http::Exchange ex) { ex.send(200, "late ok"); });
    router.get("/", [](clutch::http::Exchange ex) { ex.send(200, "hello world"); });
    router.get("/count", [&ctx](clutch::http::Exchange ex) {
      ctx.metrics().counter("probe_hits_total", "Hits on /count.", {{"route", "count"}}).inc();
      ex.send(200, "counted");
    });
    router.get("/pid",
               [&ctx](clutch::http::Exchange ex) { ex.send(200, std::to_string(ctx.pid())); });
    router.post("/echo", [](clutch::http::Exchange ex) {
      std::string body = ex.request().body;
      ex.send(200, body);
    });
    router.get("/orders/:id", [](clutch::http::Exchange ex) {
      ex.send_json(200, fmt::format(R"({{"id":"{}"}})", ex.param("id")));
    });
    router.get("/wait", [&ctx](clutch::http::Exchange ex) {
      // Answers after ?ms= milliseconds (2000 by default, at most 60 s) on a timer: a handler
      // that waits on I/O, not one that spins.
      long ms = std::clamp(std::atol(std::string(ex.request().query).c_str() + 3), 0L, 60000L);
      if (ex.request().query.rfind("ms=", 0) != 0) ms = 2000;
      ctx.set_timeout(std::chrono::milliseconds(ms), [ex]() mutable { ex.send(200, "waited"); });
    });
    router.get("/slow", [&ctx](clutch::http::Exchange ex) {
      record(R"("ev":"slow-http-start")");
      ctx.set_timeout(std::chrono::milliseconds(300),
                      [ex]() mutable { ex.send(200, "slow done"); });
    });
    router.get("/throw-later", [&ctx](clutch::http::Exchange ex) {
      // A timer's exception while this request is in flight: with on_uncaught_exception = exit
      // the worker stops, and this request must still get its answer.
      record(R"("ev":"throw-later-start")");
      ctx.set_timeout(std::chrono::milliseconds(50), [] {
        record(R"("ev":"throwing")");
        throw std::runtime_error("probe: a timer threw mid-request");
      });
      ctx.set_timeout(std::chrono::milliseconds(400),
                      [ex]() mutable { ex.send(200, "answered after the throw"); });
    });
    router.get("/never", [](clutch::http::Exchange ex) {
      static std::vector<clutch::http::Exchange> held;  // never answered
      held.push_back(ex);
    });
    router.get("/grow", [](clutch::http::Exchange ex) {
      // A leak on purpose: 128 MiB, touched so it is resident, never freed.
      static std::vector<std::unique_ptr<char[]>> leaked;
      std::size_t size = std::size_t{128} << 20;
      leaked.emplace_back(new char[size]);
      std::memset(leaked.back().get(), 1, size);
      ex.send(200, "grown");
    });
    router.get("/big", [](clutch::http::Exchange ex) { ex.send(200, std::string(32 << 20, 'b')); });
    router.get("/throw",
               [](clutch::http::Exchange) { throw std::runtime_error("handler failure"); });
    auto options = clutch::http::ServerOptions::from_config(ctx.config());  // then the probe's own
    options.read_timeout = std::chrono::milliseconds(env_int("PROBE_HTTP_READ_TIMEOUT_MS", 10000));
    options.max_connections = env_int("PROBE_HTTP_MAX_CONNECTIONS", 0);
    options.handler_timeout =
        std::chrono::milliseconds(env_int("PROBE_HTTP_HANDLER_TIMEOUT_MS", 60000));
    options.write_timeout =
        std::chrono::milliseconds(env_int("PROBE_HTTP_WRITE_TIMEOUT_MS", 60000));
    options.max_body_bytes = 64 * 1024;
    options.max_header_bytes = 8 * 1024;
    clutch::http::serve(ctx, std::move(router), options);
  }
  auto& m = ctx.messenger();
  int work_us = env_int("PROBE_WORK_US", 0);
  m.on("big", [](const clutch::Message& msg) {
    record(
        fmt::format(R"("ev":"big","size":{},"sum":{})", msg.data().size(), checksum(msg.data())));
  });
  m.on("bigslow", [&ctx](const clutch::Message& msg) {
    // Half the payload read, then a pause in which the test kills this worker.
    std::string_view first_half = msg.data().substr(0, msg.data().size() / 2);
    record(fmt::format(R"("ev":"big-start","pid":{},"half":{})", ctx.pid(), checksum(first_half)));
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    record(fmt::format(R"("ev":"big","pid":{},"size":{},"sum":{})", ctx.pid(), msg.data().size(),
                       checksum(msg.data())));
  });
  m.on("work", [work_us](const clutch::Message& msg) {
    if (work_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(work_us));
    record(fmt::format(R"("ev":"handled","id":{})", msg.data()));
  });
  m.on("spin", [](const clutch::Message&) { probe_spin_forever(); });
  m.on("slow", [](const clutch::Message&) {
    record(R"("ev":"slow-start")");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    record(R"("ev":"slow-end")");
  });
  ctx.on_ready([&ctx] {
    auto& m = ctx.messenger();
    if (env("PROBE_SCENARIO") == "routes" && ctx.worker_index() == 0) {
      m.send_to_others("others");
      for (int pid : m.workers()) {
        if (pid != ctx.pid()) {
          m.send_to(pid, "direct");
          break;
        }
      }
      m.send_to(999999, "direct");
    }
    if (env("PROBE_SCENARIO") == "requests" && ctx.worker_index() == 0) {
      auto log_reply = [](std::string name) {
        return [name](const clutch::Reply& r) {
          record(fmt::format(
              R"("ev":"reply","name":"{}","ok":{},"data":"{}","error":"{}","from_role":"{}")", name,
              r.ok, r.data, r.error, clutch::to_string(r.from.role)));
        };
      };
      using std::chrono::milliseconds;
      m.request(clutch::Target::agent(), "ask", "life", milliseconds(2000), log_reply("ask"));
      m.request(clutch::Target::agent(), "ask-later", "", milliseconds(2000), log_reply("later"));
      m.request(clutch::Target::agent(), "ask-never", "", milliseconds(300), log_reply("never"));
      m.request(clutch::Target::agent(), "no-such-handler", "", milliseconds(2000),
                log_reply("nohandler"));
      m.request(clutch::Target::process(999999), "ask", "", milliseconds(2000), log_reply("nopid"));
      m.request(clutch::Target::agent(), "ask-big", "", milliseconds(2000), log_reply("big"));
      // A callback that throws is the app's bug: logged, and the process carries on.
      m.request(clutch::Target::agent(), "ask", "", milliseconds(2000),
                [](const clutch::Reply&) { throw std::runtime_error("probe: callback bug"); });
      m.request(clutch::Target::agent(), "ask", "after", milliseconds(2000), log_reply("after"));
      auto refused = [](std::string name, const std::function<void()>& send) {
        try {
          send();
          record(fmt::format(R"("ev":"refused","name":"{}","error":"")", name));
        } catch (const clutch::MessengerError& e) {
          record(fmt::format(R"("ev":"refused","name":"{}","error":"{}")", name, e.what()));
        }
      };
      refused("reserved", [&m] { m.broadcast("clutch:ready"); });
      refused("too-large", [&m, &ctx] {
        m.send_to_agent("ask", std::string(ctx.config().max_message_size + 1, 'x'));
      });
    }
    if (env("PROBE_SCENARIO") == "jobs-api" && ctx.worker_index() == 0) {
      clutch::list_jobs(ctx, [](bool ok, const std::vector<clutch::JobStatus>& jobs) {
        for (const auto& j : jobs) {
          record(fmt::format(R"("ev":"job-listed","ok":{},"name":"{}","next":"{}","disabled":{})",
                             ok, j.name, j.next_fire, j.disabled));
        }
      });
      clutch::run_job_now(ctx, "listed", [](bool ok, const std::string& error) {
        record(fmt::format(R"("ev":"run-now","ok":{},"error":"{}")", ok, error));
      });
      clutch::run_job_now(ctx, "nonexistent", [](bool ok, const std::string& error) {
        record(fmt::format(R"("ev":"run-now","ok":{},"error":"{}")", ok, error));
      });
    }
    std::string garbage_flag = env("PROBE_GARBAGE_FLAG");
    if (!garbage_flag.empty() && ctx.worker_index() == 1 &&
        !std::filesystem::exists(garbage_flag)) {
      close(open(garbage_flag.c_str(), O_CREAT | O_WRONLY, 0644));
      record(R"("ev":"garbage")");
      const char junk[] = "GET / HTTP/1.1\r\nthis is not a clutch frame\r\n\r\n";
      (void)!write(3, junk, sizeof(junk));
    }
    // A "draining" control from a worker that goes on as if nothing happened (issue 28.2).
    std::string forge_flag = env("PROBE_FORGE_DRAINING_FLAG");
    if (!forge_flag.empty() && ctx.worker_index() == 1 && !std::filesystem::exists(forge_flag)) {
      close(open(forge_flag.c_str(), O_CREAT | O_WRONLY, 0644));
      std::vector<std::byte> frame;
      clutch::ipc::FrameHeader header;
      header.kind = clutch::ipc::FrameKind::kControl;
      clutch::ipc::append_frame(frame, header, "draining", "");
      record(R"("ev":"forged-draining")");
      (void)!write(3, frame.data(), frame.size());
    }
    // The header of an 8 MiB message and none of its body (issue 28.1): the master must not
    // take this worker's later frames (acks, beats) as that body for good.
    std::string half_flag = env("PROBE_HALF_FRAME_FLAG");
    if (!half_flag.empty() && ctx.worker_index() == 1 && !std::filesystem::exists(half_flag)) {
      close(open(half_flag.c_str(), O_CREAT | O_WRONLY, 0644));
      clutch::ipc::FrameHeader header;
      header.kind = clutch::ipc::FrameKind::kMessage;
      header.action_length = 4;
      header.payload_length = 8u << 20;
      std::byte raw[clutch::ipc::kHeaderSize];
      clutch::ipc::encode_header(header, raw);
      record(R"("ev":"half-frame")");
      (void)!write(3, raw, sizeof(raw));
    }
  });
}

}  // namespace

// A handler stuck in a busy loop (bounded at 60 s): external linkage, so the hung worker's
// backtrace can name it.
void probe_spin_forever() {
  record(R"("ev":"spin")");
  volatile uint64_t turns = 0;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < until) ++turns;
}

// A run that holds a marker file while it works: a second run at the same time finds it.
void exclusive_run(const std::string& job, int work_ms) {
  std::string marker = env("PROBE_LOG") + "." + job + ".running";
  int fd = open(marker.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
  if (fd < 0) record(fmt::format(R"("ev":"overlap","job":"{}")", job));
  record(fmt::format(
      R"("ev":"job-start","job":"{}","t":{})", job,
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count()));
  std::this_thread::sleep_for(std::chrono::milliseconds(work_ms));
  record(fmt::format(R"("ev":"job-end","job":"{}")", job));
  if (fd >= 0) {
    close(fd);
    unlink(marker.c_str());
  }
}

void declare_exactly_once(clutch::App& app, const std::string& url, const std::string& inbox);

void declare_consumer(clutch::App& app) {
  std::string url = env("PROBE_QUEUE");
  if (url.empty()) return;
  if (std::string inbox = env("PROBE_INBOX"); !inbox.empty()) {
    declare_exactly_once(app, url, inbox);
    return;
  }
  if (env("PROBE_ASYNC_MQ") == "1") {
    app.consume_async({.name = "probe",
                       .url = url,
                       .max_attempts = 3,
                       .retry_backoff = std::chrono::milliseconds(20)},
                      [](clutch::Context& ctx, clutch::QueueMessage m) -> clutch::Task {
                        co_await clutch::co::sleep(ctx, std::chrono::milliseconds(2));
                        if (m.body.rfind("poison", 0) == 0) {
                          record(fmt::format(R"("ev":"mq-poison","attempt":{})", m.attempts));
                          throw std::runtime_error("probe: poison message");
                        }
                        record(fmt::format(R"("ev":"mq","body":"{}")", m.body));
                      });
    return;
  }
  app.consume({.name = "probe",
               .url = url,
               .max_attempts = 3,
               .retry_backoff = std::chrono::milliseconds(20),
               .naive = env("PROBE_NAIVE") == "1"},
              [](clutch::Context&, const clutch::QueueMessage& m) {
                if (m.body.rfind("poison", 0) == 0) {
                  record(fmt::format(R"("ev":"mq-poison","attempt":{})", m.attempts));
                  throw std::runtime_error("probe: poison message");
                }
                int work_us = env_int("PROBE_WORK_US", 0);
                if (work_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(work_us));
                if (m.headers.empty()) {
                  record(fmt::format(R"("ev":"mq","body":"{}")", m.body));
                } else {
                  std::string headers;  // the tests' headers need no JSON escaping
                  for (const auto& [key, value] : m.headers)
                    headers +=
                        fmt::format(R"({}["{}","{}"])", headers.empty() ? "" : ",", key, value);
                  record(fmt::format(R"("ev":"mq","body":"{}","headers":[{}])", m.body, headers));
                }
              });
}

// The effect of a message, in the inbox's transaction: a row in `effects`, which has no unique
// constraint, so that a message run twice shows as two rows.
void insert_effect(sqlite3* db, const std::string& body) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, "INSERT INTO effects (body, pid) VALUES (?, ?)", -1, &s, nullptr) !=
      SQLITE_OK)
    throw std::runtime_error(std::string("probe: ") + sqlite3_errmsg(db));
  sqlite3_bind_text(s, 1, body.data(), static_cast<int>(body.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int(s, 2, getpid());
  int rc = sqlite3_step(s);
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) throw std::runtime_error(std::string("probe: ") + sqlite3_errmsg(db));
}

// The same on PostgreSQL (the test made the table).
void insert_effect(PGconn* conn, const std::string& body) {
  std::string pid = std::to_string(getpid());
  const char* values[] = {body.c_str(), pid.c_str()};
  PGresult* r = PQexecParams(conn, "INSERT INTO effects (body, pid) VALUES ($1, $2)", 2, nullptr,
                             values, nullptr, nullptr, 0);
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  std::string why = ok ? "" : PQresultErrorMessage(r);
  PQclear(r);
  if (!ok) throw std::runtime_error("probe: " + why);
}

void insert_effect(clutch::Transaction& tx, const std::string& body) {
  if (tx.postgres() != nullptr) return insert_effect(tx.postgres(), body);
  insert_effect(tx.sqlite(), body);
}

// Ends the process right after its transaction commits, before the ack leaves: the WAL hook runs
// once the commit is in the log.
int exit_after_commit(void*, sqlite3*, const char*, int) {
  record(R"("ev":"exit-after-commit")");
  _exit(9);
}

// PROBE_INBOX=sqlite:PATH: the consumer is exactly once; PROBE_EXIT_AFTER_COMMIT=PREFIX: a worker
// handling a message whose body starts with PREFIX dies between its commit and its ack.
// The app's own table in an sqlite: inbox, made before the cluster starts (the inbox makes its
// own); a postgres: inbox's is made by the test.
void make_effects_table(const std::string& inbox) {
  if (inbox.rfind("sqlite:", 0) != 0) return;
  sqlite3* db = nullptr;
  sqlite3_open(inbox.substr(7).c_str(), &db);
  sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS effects (body TEXT NOT NULL, pid INTEGER)", nullptr,
               nullptr, nullptr);
  sqlite3_close(db);
}

void declare_exactly_once(clutch::App& app, const std::string& url, const std::string& inbox) {
  make_effects_table(inbox);
  app.consume_exactly_once(
      {.name = "probe",
       .url = url,
       .max_attempts = 3,
       .retry_backoff = std::chrono::milliseconds(20),
       .inbox = inbox},
      [](clutch::Context&, const clutch::QueueMessage& m, clutch::Transaction& tx) {
        if (m.body.rfind("poison", 0) == 0) {
          record(fmt::format(R"("ev":"mq-poison","attempt":{})", m.attempts));
          insert_effect(tx, m.body);  // rolled back with the throw
          throw std::runtime_error("probe: poison message");
        }
        insert_effect(tx, m.body);
        // PROBE_OUTBOX=URL: the handler also publishes "out-BODY" there, with its transaction.
        if (std::string out = env("PROBE_OUTBOX"); !out.empty()) tx.publish(out, "out-" + m.body);
        std::string prefix = env("PROBE_EXIT_AFTER_COMMIT");
        if (!prefix.empty() && m.body.rfind(prefix, 0) == 0 && tx.sqlite() != nullptr)
          sqlite3_wal_hook(tx.sqlite(), &exit_after_commit, nullptr);
        record(fmt::format(R"("ev":"mq","body":"{}","id":"{}")", m.body, m.id));
      });
}

void declare_jobs(clutch::App& app) {
  std::string jobs = "," + env("PROBE_JOBS") + ",";
  auto wanted = [&](const char* name) {
    return jobs.find(std::string(",") + name + ",") != std::string::npos;
  };
  if (wanted("once300")) {
    // An exactly-once tick on PROBE_INBOX (sqlite:PATH): a row in `effects` per run; the first
    // worker to find PROBE_JOB_EXIT_ONCE missing creates it and dies right after its commit.
    std::string inbox = env("PROBE_INBOX");
    make_effects_table(inbox);
    app.schedule_exactly_once(
        {.name = "once300", .interval = "300ms", .inbox = inbox},
        [](clutch::Context&, clutch::Transaction& tx) {
          insert_effect(tx, "tick");
          std::string marker = env("PROBE_JOB_EXIT_ONCE");
          if (!marker.empty() && open(marker.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644) >= 0)
            sqlite3_wal_hook(tx.sqlite(), &exit_after_commit, nullptr);
        });
  }
  using clutch::JobOptions;
  if (wanted("every200")) {
    app.schedule(JobOptions{.name = "every200", .interval = "200ms"},
                 [](clutch::Context&) { exclusive_run("every200", 20); });
  }
  if (wanted("all500")) {
    app.schedule(JobOptions{.name = "all500", .interval = "500ms", .type = clutch::JobType::kAll},
                 [](clutch::Context&) { record(R"("ev":"job-start","job":"all500")"); });
  }
  if (wanted("slowskip")) {
    app.schedule(JobOptions{.name = "slowskip", .interval = "100ms"},
                 [](clutch::Context&) { exclusive_run("slowskip", 250); });
  }
  if (wanted("slowqueue")) {
    app.schedule(
        JobOptions{.name = "slowqueue", .interval = "100ms", .overlap = clutch::Overlap::kQueue},
        [](clutch::Context&) { exclusive_run("slowqueue", 250); });
  }
  if (wanted("victim")) {
    app.schedule(JobOptions{.name = "victim", .interval = "3s"},
                 [](clutch::Context&) { exclusive_run("victim", 700); });
  }
  if (wanted("immediate")) {
    app.schedule(JobOptions{.name = "immediate", .interval = "1h", .immediate = true},
                 [](clutch::Context&) { record(R"("ev":"job-start","job":"immediate")"); });
  }
  if (wanted("disabled")) {
    app.schedule(JobOptions{.name = "disabled", .interval = "50ms", .disable = true},
                 [](clutch::Context&) { record(R"("ev":"job-start","job":"disabled")"); });
  }
  if (wanted("badcron")) {
    app.schedule(JobOptions{.name = "badcron", .cron = "0 25 * * *"}, [](clutch::Context&) {});
  }
  // A cluster-scope probe job: records its runs with the instance and the wall-clock start.
  auto cluster_job = [&](const char* name, const char* interval, std::chrono::milliseconds work) {
    app.schedule(
        JobOptions{.name = name,
                   .interval = interval,
                   .scope = clutch::JobScope::kCluster,
                   .lock_url = env("PROBE_LOCK_URL")},
        [name, work](clutch::Context& ctx) {
          auto now = std::chrono::system_clock::now().time_since_epoch();
          record(fmt::format(R"("ev":"job-start","job":"{}","master":{},"t":{})", name,
                             ctx.master_pid(), std::chrono::duration<double>(now).count()));
          if (work.count() == 0) return;
          std::this_thread::sleep_for(work);
          record(fmt::format(R"("ev":"job-end","job":"{}","master":{})", name, ctx.master_pid()));
        });
  };
  if (wanted("cluster200")) cluster_job("cluster200", "200ms", std::chrono::milliseconds(0));
  // Runs long enough that an instance killed while it runs one is surely mid-run.
  if (wanted("clusterslow")) cluster_job("clusterslow", "300ms", std::chrono::milliseconds(2500));
  if (wanted("once")) {
    app.schedule(JobOptions{.name = "once", .immediate = true}, [](clutch::Context& ctx) {
      record(fmt::format(R"("ev":"job-start","job":"once","pid":{})", ctx.pid()));
    });
  }
  if (wanted("manual")) {
    app.schedule(JobOptions{.name = "manual", .interval = "1h"}, [](clutch::Context& ctx) {
      record(fmt::format(R"("ev":"job-start","job":"manual","pid":{})", ctx.pid()));
    });
  }
  if (wanted("failing")) {
    app.schedule(JobOptions{.name = "failing", .interval = "1h"}, [](clutch::Context&) {
      throw std::runtime_error("probe: this job always fails");
    });
  }
  // Ten per-second crons in a zone with an offset: the agent's cost of computing fire times.
  if (wanted("tokyo10")) {
    for (int i = 0; i < 10; ++i) {
      std::string name = fmt::format("tokyo{}", i);
      app.schedule(JobOptions{.name = name, .cron = "*/1 * * * * *", .time_zone = "Asia/Tokyo"},
                   [name](clutch::Context&) {
                     record(fmt::format(R"("ev":"job-start","job":"{}")", name));
                   });
    }
  }
  if (wanted("listed")) {
    app.schedule(JobOptions{.name = "listed", .cron = "0 3 * * *", .time_zone = "Europe/Berlin"},
                 [](clutch::Context&) { record(R"("ev":"job-start","job":"listed")"); });
  }
}

int main(int argc, char** argv) {
  clutch::App app("probe");
  app.agent(agent_setup).worker(worker_setup);
  declare_jobs(app);
  declare_consumer(app);
  return app.run(argc, argv);
}
