#include "schedule/tick_lock.hpp"

#include <fmt/format.h>

#include <vector>

#include "clutch/config.hpp"
#include "common/hiredis_api.hpp"

namespace clutch::schedule {

namespace {

RedisEndpoint lock_endpoint(const std::string& url) {
  RedisEndpoint where;
  std::string_view rest;  // a path or query is ignored
  if (std::string why = parse_redis_endpoint(url, where, rest); !why.empty())
    throw ConfigError(fmt::format("lock_url '{}': {} (expected redis://HOST:PORT)", url, why));
  return where;
}

}  // namespace

TickLock::TickLock(const std::string& url) : redis_(lock_endpoint(url), timeval{0, 500'000}) {}

namespace {

// Each script is one atomic step in Redis: no instance can die, and no auditor look, half-way.

// KEYS: the claim, the owner's running set, the job's owners. ARGV: owner, ttl in ms.
constexpr std::string_view kClaimScript = R"(
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return 1)";

// KEYS: the end mark, the owner's running set. ARGV: the claim, the outcome, ttl in ms.
constexpr std::string_view kDoneScript = R"(
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SREM', KEYS[2], ARGV[1])
return 1)";

// KEYS: the end mark, the dead owner's running set. ARGV: the claim, the mark, ttl in ms.
// 1 if this call marked it lost; 0 if it had ended, or another auditor marked it first.
constexpr std::string_view kLostScript = R"(
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
return 0)";

// KEYS: the job's owners, the owner's running set, its liveness key. ARGV: the owner.
// Forgets a claimer that is dead and has nothing filed (one only slow has claimed again since).
constexpr std::string_view kForgetScript = R"(
if redis.call('SCARD', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('SREM', KEYS[1], ARGV[1])
end
return 1)";

}  // namespace

TickLock::Claim TickLock::claim(const std::string& job, const std::string& key,
                                const std::string& owner, std::chrono::milliseconds ttl,
                                std::string& error) {
  std::string px = std::to_string(ttl.count());
  auto reply = redis_.command(
      {"EVAL", kClaimScript, "3", key, running_key(job, owner), owners_key(job), owner, px}, error);
  if (!reply) return Claim::kUnavailable;
  return reply->type == REDIS_REPLY_INTEGER && reply->integer == 1 ? Claim::kOurs : Claim::kTheirs;
}

bool TickLock::mark_done(const std::string& job, const std::string& key, const std::string& owner,
                         const std::string& outcome, std::chrono::milliseconds ttl,
                         std::string& error) {
  std::string px = std::to_string(ttl.count());
  return redis_.command(
             {"EVAL", kDoneScript, "2", done_key(key), running_key(job, owner), key, outcome, px},
             error) != nullptr;
}

bool TickLock::keep_alive(const std::string& owner, std::chrono::milliseconds ttl,
                          std::string& error) {
  std::string px = std::to_string(ttl.count());
  return redis_.command({"SET", alive_key(owner), "1", "PX", px}, error) != nullptr;
}

namespace {
std::vector<std::string> strings_of(const redisReply& reply) {
  std::vector<std::string> out;
  if (reply.type != REDIS_REPLY_ARRAY) return out;
  for (std::size_t i = 0; i < reply.elements; ++i) {
    const redisReply* e = reply.element[i];
    if (e->type == REDIS_REPLY_STRING) out.emplace_back(e->str, e->len);
  }
  return out;
}
}  // namespace

bool TickLock::find_lost(const std::string& job, const std::string& auditor,
                         std::chrono::milliseconds ttl, std::vector<LostTick>& lost,
                         std::string& error) {
  std::string px = std::to_string(ttl.count());
  auto owners = redis_.command({"SMEMBERS", owners_key(job)}, error);
  if (!owners) return false;
  for (const std::string& owner : strings_of(*owners)) {
    if (owner == auditor) continue;
    auto alive = redis_.command({"EXISTS", alive_key(owner)}, error);
    if (!alive) return false;
    if (alive->type == REDIS_REPLY_INTEGER && alive->integer == 1) continue;
    // Dead: what it still had filed never ended.
    std::string running = running_key(job, owner);
    auto ticks = redis_.command({"SMEMBERS", running}, error);
    if (!ticks) return false;
    for (const std::string& key : strings_of(*ticks)) {
      auto marked = redis_.command({"EVAL", kLostScript, "2", done_key(key), running, key,
                                    "lost (reported by " + auditor + ")", px},
                                   error);
      if (!marked) return false;
      if (marked->type == REDIS_REPLY_INTEGER && marked->integer == 1) lost.push_back({key, owner});
    }
    if (!redis_.command(
            {"EVAL", kForgetScript, "3", owners_key(job), running, alive_key(owner), owner}, error))
      return false;
  }
  return true;
}

}  // namespace clutch::schedule
