#include "schedule/tick_lock.hpp"

#include <fmt/format.h>
#include <hiredis/hiredis.h>

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

TickLock::Claim TickLock::claim(const std::string& key, const std::string& owner,
                                std::chrono::milliseconds ttl, std::string& error) {
  timeval timeout{0, 500'000};
  for (int attempt = 0; attempt < 2; ++attempt) {  // a stale connection gets one fresh try
    if (ctx_ == nullptr) {
      ctx_ = redisConnectWithTimeout(host_.c_str(), port_, timeout);
      if (ctx_ == nullptr || ctx_->err != 0) {
        error = fmt::format("redis {}:{}: {}", host_, port_, ctx_ ? ctx_->errstr : "no memory");
        if (ctx_ != nullptr) redisFree(ctx_);
        ctx_ = nullptr;
        return Claim::kUnavailable;
      }
      redisSetTimeout(ctx_, timeout);
    }
    std::string px = std::to_string(ttl.count());
    const char* argv[] = {"SET", key.c_str(), owner.c_str(), "NX", "PX", px.c_str()};
    std::size_t lengths[] = {3, key.size(), owner.size(), 2, 2, px.size()};
    auto* reply = static_cast<redisReply*>(redisCommandArgv(ctx_, 6, argv, lengths));
    if (reply == nullptr) {
      error = fmt::format("redis {}:{}: {}", host_, port_, ctx_->errstr);
      redisFree(ctx_);
      ctx_ = nullptr;
      continue;
    }
    Claim result = reply->type == REDIS_REPLY_STATUS ? Claim::kOurs
                   : reply->type == REDIS_REPLY_NIL  ? Claim::kTheirs
                                                     : Claim::kUnavailable;
    if (reply->type == REDIS_REPLY_ERROR) error = std::string(reply->str, reply->len);
    freeReplyObject(reply);
    return result;
  }
  return Claim::kUnavailable;
}

}  // namespace clutch::schedule
