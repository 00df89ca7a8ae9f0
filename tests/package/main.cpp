// The smallest application of an installed clutch: an agent that sends one message, a worker
// that answers it. tests/package/run checks that it builds, starts, and stops cleanly.
#include <clutch/app.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  clutch::App app("package-app");
  app.agent([](clutch::Context& ctx) {
    ctx.on_ready([&ctx] {
      ctx.messenger().send_random("hello", "from the agent", [](const clutch::AckResult& r) {
        std::printf("acknowledged: %s\n", r.ok ? "yes" : "no");
        std::fflush(stdout);
      });
    });
  });
  app.worker(
      [](clutch::Context& ctx) { ctx.messenger().on("hello", [](const clutch::Message&) {}); });
  return app.run(argc, argv);
}
