// Once per tick across every clutch instance: before a cluster-scope job runs a tick, its agent
// claims the tick's key in Redis (SET key NX PX); the instance that sets it runs the tick, the
// others skip it. No leader to elect or hand over: a dead instance simply stops claiming, and a
// tick can never run twice, because its key is claimed once.
//
// So that a tick claimed by an instance that then died is not lost silently, the claimer marks
// each tick's end (KEY:done), keeps a short-lived liveness key while it runs, and the instances
// that lost a tick audit it: claimed, not done, and its owner no longer alive means lost, and the
// one auditor that marks it so reports it.
#pragma once

#include <chrono>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

struct redisContext;
struct redisReply;

namespace clutch::schedule {

class TickLock {
 public:
  // `url`: redis://HOST:PORT (a path or query is ignored). Throws ConfigError for a bad URL.
  explicit TickLock(const std::string& url);
  ~TickLock();
  TickLock(const TickLock&) = delete;
  TickLock& operator=(const TickLock&) = delete;

  // Every call below is bounded: a broker that does not answer within 500 ms fails the call.

  enum class Claim { kOurs, kTheirs, kUnavailable };
  // Claims `key` for `ttl` with `owner` as its value. kUnavailable skips the tick: it is never
  // run unclaimed.
  Claim claim(const std::string& key, const std::string& owner, std::chrono::milliseconds ttl,
              std::string& error);

  // Records how the tick claimed as `key` ended (run, failed, skipped...).
  bool mark_done(const std::string& key, const std::string& outcome, std::chrono::milliseconds ttl,
                 std::string& error);

  // Says `owner` (an agent) is alive for `ttl`; renewed well within it.
  bool keep_alive(const std::string& owner, std::chrono::milliseconds ttl, std::string& error);

  enum class Audit {
    kDone,       // the tick ended and said so, or another auditor already reported it
    kRunning,    // claimed, not ended, its owner still alive: look again later
    kForgotten,  // the claim itself has expired: nothing more to learn
    kLost,       // its owner died before it ended; this call marked it so: report it
    kUnavailable
  };
  // Looks at a tick another instance claimed. `owner` is set to the claim's owner.
  Audit audit(const std::string& key, const std::string& auditor, std::chrono::milliseconds ttl,
              std::string& owner, std::string& error);

  static std::string done_key(const std::string& key) { return key + ":done"; }
  static std::string alive_key(const std::string& owner) { return "clutch:tick-owner:" + owner; }

 private:
  // One command, connecting first if needed; a stale connection gets one fresh try. Returns
  // nullptr (with `error` set) if the broker cannot be reached or answers with an error.
  std::unique_ptr<redisReply, void (*)(void*)> command(std::initializer_list<std::string_view> argv,
                                                       std::string& error);

  std::string host_;
  int port_ = 6379;
  redisContext* ctx_ = nullptr;
};

}  // namespace clutch::schedule
