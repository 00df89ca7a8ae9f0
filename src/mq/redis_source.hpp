// Redis Streams as a queue: a consumer group read with XREADGROUP, acknowledged with XACK; at
// start the agent re-reads its own pending entries (left by a predecessor that died), and every
// so often XAUTOCLAIMs entries another consumer left pending past the visibility timeout.
// Retries wait locally (the entry stays pending, so a crash loses nothing); dead letters go to the
// stream STREAM:dead. A lost connection is re-established with back-off, each attempt logged.
// Acknowledgements are gathered and travel in the same round trip as the next XREADGROUP (or on
// flush()), so a busy consumer pays one round trip per batch, not two.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
  void flush() override;
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
  // Appends the unsent acks as one XACK to the connection's output (not yet sent); returns
  // whether it did, so the caller reads its reply.
  bool append_unsent_acks();
  // Reads the reply of an XACK appended by append_unsent_acks.
  void read_ack_reply();
  [[noreturn]] void connection_lost(const char* doing);
  // Appends one command to the connection's output buffer (sent by the next redisGetReply).
  void append_argv(const std::vector<std::string_view>& args);
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
  std::deque<Delayed> delayed_;          // retries waiting for their time, still pending in Redis
  std::map<std::string, int> attempts_;  // failed attempts of entries being retried
  // Acks not yet sent: gathered by ack_many, or met a lost connection. They go out with the next
  // XREADGROUP, on flush(), on reconnect, or at once past kMaxDeferredAcks.
  std::vector<std::string> unsent_acks_;
};

}  // namespace clutch::mq
