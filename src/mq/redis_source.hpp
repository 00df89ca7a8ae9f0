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
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "clutch/mq.hpp"
#include "mq/reply_arena.hpp"

struct redisContext;
struct redisReply;
namespace clutch {
struct HiredisApi;
}

namespace clutch::mq {

struct RedisUrl {
  std::string host;
  int port = 6379;
  std::string stream;
  std::string group = "clutch";
  // Default: clutch-HOSTNAME, then -INSTANCE once the agent names its cluster instance (unique
  // per master, stable across agent restarts under it).
  std::string consumer;
  bool consumer_given = false;  // consumer= in the URL: kept as is
};

// "redis://HOST:PORT/STREAM?group=G&consumer=C"; throws ConfigError naming what is wrong.
RedisUrl parse_redis_url(const std::string& url);

// Orders stream entry ids ("1700000000000-3") by time, then sequence. Pure.
bool stream_id_less(std::string_view a, std::string_view b);

class RedisSource final : public MessageSource {
 public:
  explicit RedisSource(RedisUrl url,
                       std::chrono::milliseconds visibility_timeout = std::chrono::seconds(30));
  ~RedisSource() override;

  std::vector<QueueMessage> fetch(std::size_t max) override;
  void ack(const QueueMessage& message) override;
  void ack_many(const std::vector<QueueMessage>& messages) override;
  void flush() override;
  void avoid_blocking() override { non_blocking_ = true; }
  void retry(const QueueMessage& message, std::chrono::milliseconds delay,
             std::string_view error) override;
  void release(const QueueMessage& message) override;
  void dead_letter(const QueueMessage& message, std::string_view error) override;
  void publish(std::string_view body) override;
  void publish_with_headers(std::string_view body, const QueueHeaders& headers) override;
  void recover_in_flight() override {
    read_own_pending_ = true;
    pending_cursor_ = "0";
  }
  std::size_t pending() override;
  std::size_t dead_letters() override;
  int64_t oldest_age_ms() override;
  std::vector<DeadLetter> list_dead(std::size_t max) override;
  std::size_t requeue_dead(const std::vector<std::string>& ids) override;
  std::size_t purge_dead(const std::vector<std::string>& ids) override;
  void name_instance(const std::string& instance) override {
    if (!url_.consumer_given) url_.consumer += "-" + instance;
  }
  void keep_alive() override;
  // Entry ids are unique within a stream (and time-based, so a stream made anew does not reuse
  // them); the group's name keeps two groups' inboxes apart.
  std::string identity() override { return "redis:" + url_.stream + "?group=" + url_.group; }
  // How long a consumer's liveness key lasts without renewal (renewed about once a second).
  static constexpr std::chrono::milliseconds kLivenessTtl{3000};

 private:
  std::string liveness_key(std::string_view consumer) const {
    return url_.stream + ":alive:" + url_.group + ":" + std::string(consumer);
  }
  // Claims every entry pending for `consumer` (found dead) into taken_over_.
  void take_over(const std::string& consumer);
  using Clock = std::chrono::steady_clock;
  struct Delayed {
    Clock::time_point due;
    QueueMessage message;
  };

  // A whole reply from this connection, let go to the arena it was built in.
  using Reply = std::unique_ptr<redisReply, ReplyRelease>;
  Reply hold(redisReply* r) { return Reply(r, ReplyRelease{&arena_}); }
  // Runs one command; reconnects first if needed. Throws on a lost connection or an error reply.
  // The caller holds the reply it returns (hold()).
  redisReply* command(const std::vector<std::string_view>& args);
  // Connects, or throws why not. In non-blocking mode a connect in progress throws "connecting"
  // and is looked at again on the next call (bounded by the 1 s connect timeout).
  void connect();
  [[noreturn]] void connect_failed(redisContext* c, const std::string& why);
  void connected(redisContext* c);
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
  // Appends the stream entries of an XREADGROUP or XAUTOCLAIM reply to `out`.
  void read_entries(redisReply* entries, std::vector<QueueMessage>& out);
  // Reads the reply of an XREADGROUP already sent; appends its entries; returns how many.
  std::size_t read_group_reply(std::vector<QueueMessage>& out);
  // Sends the unsent acks and an XREADGROUP for `count` new entries without waiting for replies.
  void send_prefetch(std::size_t count);
  // Reads the replies of whatever send_prefetch sent (entries go to prefetched_): every other
  // use of the connection calls it first, since replies come back in order.
  void collect_outstanding();
  // The connection is gone: acks whose reply never came are queued to go again.
  void forget_outstanding();
  // fetch's part that talks to Redis; appends to `out`, which keeps what it had on a throw.
  void fetch_from_redis(std::vector<QueueMessage>& out, std::size_t max);
  // One synchronous XREADGROUP (with the gathered acks in the same round trip), then XAUTOCLAIM
  // when it is due.
  void read_now(std::vector<QueueMessage>& out, std::size_t max);
  void autoclaim(std::vector<QueueMessage>& out, std::size_t max);

  const HiredisApi& redis_;  // loaded by the first Redis source (common/hiredis_api.hpp)
  RedisUrl url_;
  std::chrono::milliseconds visibility_timeout_;
  ReplyArena arena_;  // declared before the contexts: a reader hands back a half-read reply to it
  redisContext* ctx_ = nullptr;
  redisContext* connecting_ = nullptr;  // a non-blocking connect in progress
  Clock::time_point connecting_since_{};
  bool non_blocking_ = false;
  bool read_own_pending_ = false;
  bool lost_a_read_ = false;  // a read's reply died with the connection: re-read after reconnect
  std::string newest_seen_;   // the newest entry id read or claimed so far
  std::string pending_cursor_ = "0";
  Clock::time_point next_connect_{}, next_autoclaim_{};
  std::vector<QueueMessage> taken_over_;  // a dead consumer's entries, handed out by fetch
  std::chrono::milliseconds reconnect_delay_{100};
  bool was_connected_ = false;
  std::deque<Delayed> delayed_;          // retries waiting for their time, still pending in Redis
  std::map<std::string, int> attempts_;  // failed attempts of entries being retried
  // Entries read without a `body` field: fetch dead-letters them instead of handing them out.
  std::set<std::string> bodiless_;
  // Dead-letters the entries of `out` that are in bodiless_ and removes them from `out`.
  void dead_letter_bodiless(std::vector<QueueMessage>& out);
  // XADD to STREAM:dead (with or without a body field, as the entry had it), then XACK.
  void add_dead_letter(const QueueMessage& m, std::string_view error, bool has_body);
  // Acks not yet sent: gathered by ack_many, or met a lost connection. They go out with the next
  // XREADGROUP, on flush(), on reconnect, or at once past kMaxDeferredAcks.
  std::vector<std::string> unsent_acks_;
  std::vector<std::string> acks_sending_;  // in an XACK whose reply has not been read yet
  bool acks_in_flight_ = false, read_in_flight_ = false;
  std::deque<QueueMessage> prefetched_;  // read ahead; handed out by the next fetch
  std::size_t prefetch_count_ = 0;       // the COUNT of the read ahead in flight
  bool last_read_full_ = false;          // the last read returned all it asked for
};

}  // namespace clutch::mq
