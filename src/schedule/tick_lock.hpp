// Once per tick across every clutch instance: before a cluster-scope job runs a tick, its agent
// claims the tick's key in Redis (SET key NX PX); the instance that sets it runs the tick, the
// others skip it. No leader to elect or hand over: a dead instance simply stops claiming, and a
// tick can never run twice, because its key is claimed once.
//
// So that a tick claimed by an instance that then died is not lost silently, each claim is also
// filed, in the same atomic step, under its claimer (clutch:tick-running:JOB:OWNER), and the
// claimer under the job (clutch:tick-owners:JOB); the claimer takes the tick out when it ends and
// marks its end (KEY:done), and keeps a short-lived liveness key. Every instance audits the job's
// claimers: the ticks still filed under one whose liveness key has expired are lost, and the one
// auditor whose "lost" end mark lands reports each. So a lost tick is found whether or not the
// auditor was running when it was claimed (a restarted instance finds its predecessor's).
#pragma once

#include <chrono>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/redis_connection.hpp"

namespace clutch::schedule {

class TickLock {
 public:
  // `url`: redis://HOST:PORT (a path or query is ignored). Throws ConfigError for a bad URL.
  explicit TickLock(const std::string& url);
  TickLock(const TickLock&) = delete;
  TickLock& operator=(const TickLock&) = delete;

  // Every call below is bounded: a broker that does not answer within 500 ms fails the call.

  enum class Claim { kOurs, kTheirs, kUnavailable };
  // Claims `key` (a tick of `job`) for `ttl` with `owner` as its value, and files it under the
  // owner. kUnavailable skips the tick: it is never run unclaimed.
  Claim claim(const std::string& job, const std::string& key, const std::string& owner,
              std::chrono::milliseconds ttl, std::string& error);

  // Records how the tick claimed as `key` ended (run, failed, skipped...), and unfiles it.
  bool mark_done(const std::string& job, const std::string& key, const std::string& owner,
                 const std::string& outcome, std::chrono::milliseconds ttl, std::string& error);

  // Says `owner` (an agent) is alive for `ttl`; renewed well within it.
  bool keep_alive(const std::string& owner, std::chrono::milliseconds ttl, std::string& error);

  struct LostTick {
    std::string key, owner;
  };
  // The ticks of `job` filed under claimers other than `auditor` whose liveness has expired,
  // each marked lost by this call (so reported by this auditor alone). False if the broker
  // failed; `lost` then holds what was found before it did.
  bool find_lost(const std::string& job, const std::string& auditor, std::chrono::milliseconds ttl,
                 std::vector<LostTick>& lost, std::string& error);

  static std::string done_key(const std::string& key) { return key + ":done"; }
  static std::string alive_key(const std::string& owner) { return "clutch:tick-owner:" + owner; }
  static std::string owners_key(const std::string& job) { return "clutch:tick-owners:" + job; }
  static std::string running_key(const std::string& job, const std::string& owner) {
    return "clutch:tick-running:" + job + ":" + owner;
  }

 private:
  // Every call bounded by 500 ms (common/redis_connection.hpp); nullptr (with `error` set) if
  // the broker cannot be reached or answers with an error.
  BlockingRedis redis_;
};

}  // namespace clutch::schedule
