// The Redis URL every part shares (common/redis_endpoint.hpp), and the blocking connection's
// errors when nothing answers (common/redis_connection.hpp).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clutch/config.hpp"
#include "common/redis_connection.hpp"
#include "common/redis_endpoint.hpp"
#include "schedule/tick_lock.hpp"

namespace clutch {
namespace {

TEST(RedisEndpoint, SplitsTheAddressFromWhatFollows) {
  RedisEndpoint where;
  std::string_view rest;
  EXPECT_EQ(parse_redis_endpoint("redis://127.0.0.1:6380/orders?group=g", where, rest), "");
  EXPECT_EQ(where.host, "127.0.0.1");
  EXPECT_EQ(where.port, 6380);
  EXPECT_EQ(rest, "orders?group=g");
  EXPECT_EQ(parse_redis_endpoint("redis://cache", where, rest), "");
  EXPECT_EQ(where.host, "cache");
  EXPECT_EQ(where.port, 6379);
  EXPECT_EQ(rest, "");
}

TEST(RedisEndpoint, SaysWhyAnAddressIsUnusable) {
  for (auto [url, why] :
       {std::pair{"http://x", "it must start with redis://"}, std::pair{"redis://:1/x", "no host"},
        std::pair{"redis://h:0", "bad port '0'"}, std::pair{"redis://h:7x/s", "bad port '7x'"}}) {
    RedisEndpoint where;
    std::string_view rest;
    EXPECT_EQ(parse_redis_endpoint(url, where, rest), why) << url;
  }
}

TEST(RedisEndpoint, ALockUrlThatIsNotRedisFailsTheStartNamingTheKey) {
  try {
    schedule::TickLock lock("http://127.0.0.1:6379");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("lock_url 'http://127.0.0.1:6379'"), std::string::npos)
        << e.what();
  }
}

// A loopback port nobody listens on: bound, then closed (the kernel refuses connections to it).
int closed_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t n = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  close(fd);
  return ntohs(a.sin_port);
}

TEST(BlockingRedis, AServerThatIsNotThereIsAnErrorNamingIt) {
  int port = closed_port();
  BlockingRedis redis({"127.0.0.1", port}, timeval{0, 500'000});
  std::string error;
  EXPECT_EQ(redis.command({"PING"}, error), nullptr);
  EXPECT_NE(error.find("redis 127.0.0.1:" + std::to_string(port) + ": "), std::string::npos)
      << error;
}

}  // namespace
}  // namespace clutch
