// Where a Redis server is, from a redis:// URL: one syntax for every Redis URL clutch takes (a
// queue's, a schedule's lock_url). Pure: no I/O, so it is unit-tested directly.
#pragma once

#include <string>
#include <string_view>

namespace clutch {

struct RedisEndpoint {
  std::string host;
  int port = 6379;
};

// Splits "redis://HOST[:PORT][/REST]" into `out` and `rest` (what follows the address's '/',
// path and query; "" when there is none). Returns "" on success, else why the URL is unusable;
// each caller words the error around it with the URL form it expects.
std::string parse_redis_endpoint(std::string_view url, RedisEndpoint& out, std::string_view& rest);

}  // namespace clutch
