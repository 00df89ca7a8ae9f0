// Once per tick across every clutch instance: before a cluster-scope job runs a tick, its agent
// claims the tick's key in Redis (SET key NX PX); the instance that sets it runs the tick, the
// others skip it. No leader to elect or hand over: a dead instance simply stops claiming, and a
// tick can never run twice, because its key is claimed once.
#pragma once

#include <chrono>
#include <memory>
#include <string>

struct redisContext;

namespace clutch::schedule {

class TickLock {
 public:
  // `url`: redis://HOST:PORT (a path or query is ignored). Throws ConfigError for a bad URL.
  explicit TickLock(const std::string& url);
  ~TickLock();
  TickLock(const TickLock&) = delete;
  TickLock& operator=(const TickLock&) = delete;

  enum class Claim { kOurs, kTheirs, kUnavailable };
  // Claims `key` for `ttl` with `owner` as its value. Bounded: a broker that does not answer
  // within 500 ms is kUnavailable (the tick is then skipped, never run unclaimed).
  Claim claim(const std::string& key, const std::string& owner, std::chrono::milliseconds ttl,
              std::string& error);

 private:
  std::string host_;
  int port_ = 6379;
  redisContext* ctx_ = nullptr;
};

}  // namespace clutch::schedule
