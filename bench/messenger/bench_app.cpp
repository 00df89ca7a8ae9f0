// The clutch side of bench/messenger: the agent drives one measurement (BENCH_MODE) against the
// workers and prints "BENCH key value" lines on stdout for bench/messenger/run to collect.
#include <clutch/app.hpp>
#include <cstring>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::string env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}

void report(const std::string& key, double value) {
  std::printf("BENCH %s %.3f\n", key.c_str(), value);
  std::fflush(stdout);
}

double realtime_us() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Run {
  clutch::Context* ctx;
  std::string mode, payload;
  std::size_t count, sent = 0, counted = 0, replies = 0, workers = 0;
  Clock::time_point started;
  std::vector<double> rtts;

  // Sends as fast as the master takes them, pausing on the messenger's back-pressure. At most
  // 256 KiB waits in the agent (as the relay's sender has one 64-message write in flight): a
  // deeper queue only streams the same bytes through more cache.
  void pump() {
    auto& m = ctx->messenger();
    while (sent < count) {
      if (m.pending_bytes() > (std::size_t{256} << 10)) {
        m.on_writable([this] { pump(); });
        return;
      }
      if (mode == "broadcast")
        m.send_to_app("x", payload);
      else
        m.send_random("x", payload);
      ++sent;
    }
    // FIFO per pair: each worker sees "flush" after every message it was given.
    m.send_to_app("flush");
  }

  void on_count(std::size_t n) {
    counted += n;
    if (++replies < workers) return;
    double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    report(mode + "_msgs_per_s", static_cast<double>(count) / seconds);
    report(mode + "_deliveries", static_cast<double>(counted));
  }

  void ping() {
    auto t0 = Clock::now();
    ctx->messenger().request(
        clutch::Target::random_worker(), "ping", payload, std::chrono::seconds(5),
        [this, t0](const clutch::Reply& r) {
          if (!r.ok) std::fprintf(stderr, "ping failed: %s\n", r.error.c_str());
          rtts.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
          if (rtts.size() < count) return ping();
          std::sort(rtts.begin(), rtts.end());
          report("rtt_p50_us", rtts[rtts.size() / 2]);
          report("rtt_p99_us", rtts[rtts.size() * 99 / 100]);
        });
  }
};

}  // namespace

int main(int argc, char** argv) {
  clutch::App app("bench");
  app.agent([](clutch::Context& ctx) {
    auto run = std::make_shared<Run>();
    run->ctx = &ctx;
    run->mode = env("BENCH_MODE", "idle");
    run->payload = std::string(std::stoul(env("BENCH_SIZE", "64")), 'p');
    run->count = std::stoul(env("BENCH_COUNT", "100000"));
    ctx.messenger().on("count", [run](const clutch::Message& m) {
      run->on_count(std::stoul(std::string(m.data())));
    });
    ctx.messenger().on_member([](const clutch::MemberEvent& ev) {
      if (ev.joined && ev.role == clutch::Role::kWorker)
        report("worker_joined_at_us", realtime_us());
    });
    ctx.on_ready([run] {
      run->workers = run->ctx->messenger().workers().size();
      run->started = Clock::now();
      if (run->mode == "random" || run->mode == "broadcast")
        run->pump();
      else if (run->mode == "latency")
        run->ping();
      report("ready", 1);
    });
  });
  app.worker([](clutch::Context& ctx) {
    auto count = std::make_shared<std::size_t>(0);
    // BENCH_TOUCH=1: the handler reads every byte (as the relay's receiver copies every byte out
    // of its socket), so that a payload mapped from shared memory is not counted as free.
    bool touch = env("BENCH_TOUCH", "0") == "1";
    ctx.messenger().on("x", [count, touch](const clutch::Message& m) {
      ++*count;
      if (!touch) return;
      uint64_t sum = 0;
      const char* p = m.data().data();
      for (std::size_t i = 0; i + 8 <= m.data().size(); i += 8) {
        uint64_t word;
        std::memcpy(&word, p + i, 8);
        sum += word;
      }
      volatile uint64_t sink = sum;
      (void)sink;
    });
    ctx.messenger().on("flush", [&ctx, count](const clutch::Message&) {
      ctx.messenger().send_to_agent("count", std::to_string(*count));
      *count = 0;
    });
    ctx.messenger().on("ping", [](const clutch::Message& m) { m.reply(m.data()); });
  });
  return app.run(argc, argv);
}
