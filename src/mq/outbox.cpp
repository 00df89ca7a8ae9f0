#include "mq/outbox.hpp"

#include <fmt/format.h>

#include <random>

namespace clutch::mq {

std::string outbox_token() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}{:016x}", rng(), rng());
}

int64_t outbox_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace clutch::mq
