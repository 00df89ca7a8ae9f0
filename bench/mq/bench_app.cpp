// The clutch side of bench/mq: consume BENCH_QUEUE with an empty handler on every worker.
#include <clutch/app.hpp>
#include <clutch/mq.hpp>

#include <cstdlib>

int main(int argc, char** argv) {
  clutch::App app("bench-mq");
  app.consume({.name = "bench", .url = std::getenv("BENCH_QUEUE"), .max_in_flight_per_worker = 256},
              [](clutch::Context&, const clutch::QueueMessage&) {});
  return app.run(argc, argv);
}
