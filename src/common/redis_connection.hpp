// One blocking Redis connection whose every call is bounded by a timeout: connected on first use,
// and a connection found stale gets one fresh try. For callers that can afford to wait briefly
// (a producer, the schedule's tick lock); the agent's queue consumer connects without blocking
// (mq/redis_source.cpp) and only then uses connect_blocking's settings.
#pragma once

#include <sys/time.h>

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "common/redis_endpoint.hpp"

struct redisContext;
struct redisReply;

namespace clutch {

struct HiredisApi;

using RedisReplyPtr = std::unique_ptr<redisReply, void (*)(void*)>;

// A connected context with `timeout` on the connect and every later read and write, or nullptr
// with `why` set (hiredis's reason, e.g. "Connection refused").
redisContext* redis_connect_blocking(const HiredisApi& redis, const RedisEndpoint& where,
                                     timeval timeout, std::string& why);

class BlockingRedis {
 public:
  BlockingRedis(RedisEndpoint where, timeval timeout);
  ~BlockingRedis();
  BlockingRedis(const BlockingRedis&) = delete;
  BlockingRedis& operator=(const BlockingRedis&) = delete;

  // One command, connecting first if needed. nullptr (with `error` set) when the server cannot
  // be reached or answers with an error.
  RedisReplyPtr command(std::initializer_list<std::string_view> argv, std::string& error);

 private:
  const HiredisApi& redis_;  // loaded by the first Redis connection (common/hiredis_api.hpp)
  RedisEndpoint where_;
  timeval timeout_;
  redisContext* ctx_ = nullptr;
};

}  // namespace clutch
