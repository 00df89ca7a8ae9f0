#include "schedule/tick_lock.hpp"

#include <fmt/format.h>
#include <hiredis/hiredis.h>

#include <vector>

#include "clutch/config.hpp"
#include "mq/redis_source.hpp"

namespace clutch::schedule {

TickLock::TickLock(const std::string& url) {
  // The queue's URL parser, with a stream name it ignores: one syntax for every Redis URL.
  std::string with_stream = url;
  auto after_scheme = url.find("://");
  if (after_scheme == std::string::npos || url.rfind("redis://", 0) != 0)
    throw ConfigError(fmt::format("lock_url '{}': expected redis://HOST:PORT", url));
  if (url.find('/', after_scheme + 3) == std::string::npos) with_stream += "/ticks";
  mq::RedisUrl parsed = mq::parse_redis_url(with_stream);
  host_ = parsed.host;
  port_ = parsed.port;
}

TickLock::~TickLock() {
  if (ctx_ != nullptr) redisFree(ctx_);
}

std::unique_ptr<redisReply, void (*)(void*)> TickLock::command(
    std::initializer_list<std::string_view> argv, std::string& error) {
  std::unique_ptr<redisReply, void (*)(void*)> none(nullptr, freeReplyObject);
  timeval timeout{0, 500'000};
  std::vector<const char*> args;
  std::vector<std::size_t> lengths;
  for (auto a : argv) {
    args.push_back(a.data());
    lengths.push_back(a.size());
  }
  for (int attempt = 0; attempt < 2; ++attempt) {  // a stale connection gets one fresh try
    if (ctx_ == nullptr) {
      ctx_ = redisConnectWithTimeout(host_.c_str(), port_, timeout);
      if (ctx_ == nullptr || ctx_->err != 0) {
        error = fmt::format("redis {}:{}: {}", host_, port_, ctx_ ? ctx_->errstr : "no memory");
        if (ctx_ != nullptr) redisFree(ctx_);
        ctx_ = nullptr;
        return none;
      }
      redisSetTimeout(ctx_, timeout);
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lengths.data()));
    if (reply == nullptr) {
      error = fmt::format("redis {}:{}: {}", host_, port_, ctx_->errstr);
      redisFree(ctx_);
      ctx_ = nullptr;
      continue;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      error = std::string(reply->str, reply->len);
      freeReplyObject(reply);
      return none;
    }
    return {reply, freeReplyObject};
  }
  return none;
}

TickLock::Claim TickLock::claim(const std::string& key, const std::string& owner,
                                std::chrono::milliseconds ttl, std::string& error) {
  std::string px = std::to_string(ttl.count());
  auto reply = command({"SET", key, owner, "NX", "PX", px}, error);
  if (!reply) return Claim::kUnavailable;
  return reply->type == REDIS_REPLY_STATUS ? Claim::kOurs : Claim::kTheirs;
}

bool TickLock::mark_done(const std::string& key, const std::string& outcome,
                         std::chrono::milliseconds ttl, std::string& error) {
  std::string px = std::to_string(ttl.count());
  return command({"SET", done_key(key), outcome, "PX", px}, error) != nullptr;
}

bool TickLock::keep_alive(const std::string& owner, std::chrono::milliseconds ttl,
                          std::string& error) {
  std::string px = std::to_string(ttl.count());
  return command({"SET", alive_key(owner), "1", "PX", px}, error) != nullptr;
}

TickLock::Audit TickLock::audit(const std::string& key, const std::string& auditor,
                                std::chrono::milliseconds ttl, std::string& owner,
                                std::string& error) {
  auto claim_and_end = command({"MGET", key, done_key(key)}, error);
  if (!claim_and_end) return Audit::kUnavailable;
  if (claim_and_end->type != REDIS_REPLY_ARRAY || claim_and_end->elements != 2) {
    error = "unexpected reply to MGET";
    return Audit::kUnavailable;
  }
  redisReply* claimed = claim_and_end->element[0];
  redisReply* ended = claim_and_end->element[1];
  if (ended->type == REDIS_REPLY_STRING) return Audit::kDone;
  if (claimed->type != REDIS_REPLY_STRING) return Audit::kForgotten;
  owner.assign(claimed->str, claimed->len);
  auto alive = command({"EXISTS", alive_key(owner)}, error);
  if (!alive) return Audit::kUnavailable;
  if (alive->type == REDIS_REPLY_INTEGER && alive->integer == 1) return Audit::kRunning;
  // Its owner is gone and it never said it ended. Every auditor sees this; the one whose mark
  // lands reports it, so a lost tick is reported once in the whole cluster.
  std::string px = std::to_string(ttl.count());
  auto marked =
      command({"SET", done_key(key), "lost (reported by " + auditor + ")", "NX", "PX", px}, error);
  if (!marked) return Audit::kUnavailable;
  return marked->type == REDIS_REPLY_STATUS ? Audit::kLost : Audit::kDone;
}

}  // namespace clutch::schedule
