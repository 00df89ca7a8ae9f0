#include "common/redis_connection.hpp"

#include <fmt/format.h>

#include <vector>

#include "common/hiredis_api.hpp"

namespace clutch {

redisContext* redis_connect_blocking(const HiredisApi& redis, const RedisEndpoint& where,
                                     timeval timeout, std::string& why) {
  redisContext* c = redis.redisConnectWithTimeout(where.host.c_str(), where.port, timeout);
  if (c == nullptr || c->err != 0) {
    why = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redis.redisFree(c);
    return nullptr;
  }
  redis.redisSetTimeout(c, timeout);
  return c;
}

BlockingRedis::BlockingRedis(RedisEndpoint where, timeval timeout)
    : redis_(hiredis()), where_(std::move(where)), timeout_(timeout) {}

BlockingRedis::~BlockingRedis() {
  if (ctx_ != nullptr) redis_.redisFree(ctx_);
}

RedisReplyPtr BlockingRedis::command(std::initializer_list<std::string_view> argv,
                                     std::string& error) {
  RedisReplyPtr none(nullptr, redis_.freeReplyObject);
  std::vector<const char*> args;
  std::vector<std::size_t> lengths;
  for (auto a : argv) {
    args.push_back(a.data());
    lengths.push_back(a.size());
  }
  for (int attempt = 0; attempt < 2; ++attempt) {  // a stale connection gets one fresh try
    if (ctx_ == nullptr) {
      std::string why;
      ctx_ = redis_connect_blocking(redis_, where_, timeout_, why);
      if (ctx_ == nullptr) {
        error = fmt::format("redis {}:{}: {}", where_.host, where_.port, why);
        return none;
      }
    }
    auto* reply = static_cast<redisReply*>(
        redis_.redisCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lengths.data()));
    if (reply == nullptr) {
      error = fmt::format("redis {}:{}: {}", where_.host, where_.port, ctx_->errstr);
      redis_.redisFree(ctx_);
      ctx_ = nullptr;
      continue;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      error = std::string(reply->str, reply->len);
      redis_.freeReplyObject(reply);
      return none;
    }
    return {reply, redis_.freeReplyObject};
  }
  return none;
}

}  // namespace clutch
