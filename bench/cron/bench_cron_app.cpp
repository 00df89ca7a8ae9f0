// A cluster whose agent fires BENCH_JOBS jobs every second: "*/1 * * * * *" crons in
// BENCH_ZONE (BENCH_KIND=cron), or 1 s intervals (BENCH_KIND=interval, the reference: the same
// ticks without computing a single fire time). bench/cron/run reads the agent's CPU from /proc.
#include <fmt/format.h>
#include <clutch/app.hpp>

#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  auto env = [](const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return std::string(v != nullptr ? v : fallback);
  };
  clutch::App app("bench_cron");
  int jobs = std::atoi(env("BENCH_JOBS", "10").c_str());
  bool cron = env("BENCH_KIND", "cron") == "cron";
  for (int i = 0; i < jobs; ++i) {
    clutch::JobOptions options{.name = fmt::format("job{}", i)};
    if (cron) {
      options.cron = "*/1 * * * * *";
      options.time_zone = env("BENCH_ZONE", "Asia/Tokyo");
    } else {
      options.interval = "1s";
    }
    app.schedule(options, [](clutch::Context&) {});
  }
  app.agent([](clutch::Context&) {}).worker([](clutch::Context&) {});
  return app.run(argc, argv);
}
