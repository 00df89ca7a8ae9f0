// Redis Streams as a queue: a consumer group read with XREADGROUP, acknowledged with XACK; at
// start the agent re-reads its own pending entries (left by a predecessor that died), and every
// so often XAUTOCLAIMs entries another consumer left pending past the visibility timeout.
// Retries wait locally (the entry stays pending, so a crash loses nothing); dead letters go to the
// stream STREAM:dead. A lost connection is re-established with back-off, each attempt logged.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include "clutch/mq.hpp"

struct redisContext;
struct redisReply;

namespace clutch::mq {

struct RedisUrl {
  std::string host;
  int port = 6379;
  std::string stream;
  std::string group = "clutch";
  std::string consumer;  // default: clutch-HOSTNAME (stable across agent restarts on a host)
};

// "redis://HOST:PORT/STREAM?group=G&consumer=C"; throws ConfigError naming what is wrong.
RedisUrl parse_redis_url(const std::string& url);

class RedisSource final : public MessageSource {
 public:
  explicit RedisSource(RedisUrl url,
                       std::chrono::milliseconds visibility_timeout = std::chrono::seconds(30));
  ~RedisSource() override;

  std::vector<QueueMessage> fetch(std::size_t max) override;
  void ack(const QueueMessage& message) override;
  void ack_many(const std::vector<QueueMessage>& messages) override;
  void retry(const QueueMessage& message, std::chrono::milliseconds delay,
             std::string_view error) override;
  void release(const QueueMessage& message) override;
  void dead_letter(const QueueMessage& message, std::string_view error) override;
  void publish(std::string_view body) override;
  void recover_in_flight() override {
    read_own_pending_ = true;
    pending_cursor_ = "0";
  }
  std::size_t pending() override;
  std::size_t dead_letters() override;

 private:
  using Clock = std::chrono::steady_clock;
  struct Delayed {
    Clock::time_point due;
    QueueMessage message;
  };

  // Runs one command; reconnects first if needed. Throws on a lost connection or an error reply.
  redisReply* command(std::initializer_list<std::string_view> args);
  void connect();
  void ensure_group();
  void flush_unsent_acks();
  std::vector<QueueMessage> read_entries(redisReply* entries);
  void autoclaim(std::vector<QueueMessage>& out, std::size_t max);

  RedisUrl url_;
  std::chrono::milliseconds visibility_timeout_;
  redisContext* ctx_ = nullptr;
  bool read_own_pending_ = false;
  std::string pending_cursor_ = "0";
  Clock::time_point next_connect_{}, next_autoclaim_{};
  std::chrono::milliseconds reconnect_delay_{100};
  bool was_connected_ = false;
  std::deque<Delayed> delayed_;           // retries waiting for their time, still pending in Redis
  std::map<std::string, int> attempts_;   // failed attempts of entries being retried
  std::vector<std::string> unsent_acks_;  // acks that met a lost connection; sent on reconnect
};

}  // namespace clutch::mq
