// One AMQP 0-9-1 connection, owned by its own I/O thread so that nothing the broker does (a slow
// handshake, DNS, a broker that accepts and never answers) can hold up the caller's event loop.
// rabbitmq-c is a blocking library; this thread is the only one that touches the connection.
//
// The caller (the agent's loop, or a producer) talks to the thread through queues: deliveries
// come out of take_deliveries(); acks, rejects and publications go in as commands, which the
// thread runs in order once connected. A lost connection is re-opened with back-off; the
// broker then redelivers whatever this connection had not acknowledged, so every delivery carries
// the connection generation it came on, and settling one from an older generation is a no-op.
//
// Channel 1 consumes (basic.qos prefetch, manual acks); channel 2 publishes in confirm mode and
// runs the queue declarations; channel 3 browses the dead-letter queue (closing it requeues).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "clutch/mq.hpp"
#include "mq/amqp_url.hpp"

namespace clutch::mq {

struct AmqpDelivery {
  QueueMessage message;
  uint64_t generation = 0;  // of the connection it came on
  uint64_t tag = 0;         // its delivery tag on that connection
  // Whether message.id is the publisher's message_id (the same on every redelivery) rather than
  // a name made up for this delivery.
  bool named_by_publisher = false;
};

// Headers clutch reads and writes on messages.
inline constexpr const char* kAttemptsHeader = "x-clutch-attempts";
inline constexpr const char* kErrorHeader = "x-clutch-error";
inline constexpr const char* kFailedAtHeader = "x-clutch-failed-at";

struct AmqpPublication {
  std::string queue;  // routed through the default exchange
  std::string body;
  std::string message_id;
  int attempts = 0;
  std::string error;         // set for dead letters
  int64_t failed_at_ms = 0;  // set for dead letters
  QueueHeaders headers;      // the message's own (QueueMessage::headers): kept on every copy
};

class AmqpSession;  // the thread's side: the connection itself

class AmqpLink : public std::enable_shared_from_this<AmqpLink> {
 public:
  // Starts the I/O thread, which keeps the link alive until it ends.
  static std::shared_ptr<AmqpLink> start(AmqpUrl url);
  ~AmqpLink();
  AmqpLink(const AmqpLink&) = delete;
  AmqpLink& operator=(const AmqpLink&) = delete;
  // Runs the commands still queued (acks) if connected, closes the connection, and ends the
  // thread, waiting at most `timeout` (then the thread finishes on its own).
  void stop(std::chrono::milliseconds timeout);

  using Command = std::function<void(AmqpSession&)>;
  // Runs `command` on the I/O thread once connected (in order with the others). A command that
  // throws drops the connection (and is not run again).
  void post(Command command);
  // Up to `max` deliveries received so far; never waits. The first call starts consuming (a link
  // used only to publish never takes messages from the queue).
  std::vector<AmqpDelivery> take_deliveries(std::size_t max);
  // Lines the thread wants logged, as (is_error, text): the caller's loop owns the logger.
  std::vector<std::pair<bool, std::string>> take_log();
  // `wake` is called (on the link's thread) when deliveries arrive after take_deliveries came back
  // empty; cleared by stop().
  void set_waker(std::function<void()> wake);
  // Waits (at most `timeout`) until the commands posted so far have run; false on timeout.
  bool drain(std::chrono::milliseconds timeout);

  uint64_t generation() const { return generation_.load(); }  // 0 until first connected
  bool connected() const { return connected_.load(); }
  // The last counts the thread read (queue.declare, every 2 s while connected); -1 unknown.
  int64_t ready_count() const { return ready_count_.load(); }
  int64_t dead_count() const { return dead_count_.load(); }
  const AmqpUrl& url() const { return url_; }

 private:
  friend class AmqpSession;
  explicit AmqpLink(AmqpUrl url);
  void run();
  // Runs the queued commands; one that throws is counted as run and the throw goes on.
  void run_commands(AmqpSession& session);
  void wake();
  void log(bool error, std::string text);

  AmqpUrl url_;
  // Names deliveries without a message_id: random per link, so that a restarted agent (whose
  // connections count from 1 again) never reuses the name of a delivery the master still
  // remembers as handled under its idempotency key.
  std::string delivery_prefix_;
  int wake_fd_ = -1;  // an eventfd the thread polls beside its socket
  std::mutex mutex_;
  std::condition_variable drained_;
  std::deque<Command> commands_;
  uint64_t posted_ = 0, ran_ = 0;  // commands posted / run or dropped, for drain()
  std::deque<AmqpDelivery> deliveries_;
  std::function<void()> wake_;
  bool caller_waiting_ = false;
  std::vector<std::pair<bool, std::string>> log_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> connected_{false}, stopping_{false}, consume_{false};
  std::atomic<int64_t> ready_count_{-1}, dead_count_{-1};
  bool finished_ = false;  // the thread ended (under mutex_, signalled by drained_)
};

// What a command may do with the connection (on the I/O thread only). Each call throws
// std::runtime_error when the connection fails; the link then reconnects.
class AmqpSession {
 public:
  uint64_t generation() const { return generation_; }
  bool connected() const { return state_ != nullptr; }
  // Acks are gathered per turn of the link's loop and sent by flush_acks: the ones below every
  // unsettled delivery as one basic.ack with `multiple` (far less work for the broker than one
  // per message), the others one by one.
  void ack(uint64_t tag);
  void flush_acks();
  void reject(uint64_t tag, bool requeue);
  // Publishes (persistent) and calls `confirmed(ok)` when the broker confirms or refuses it, or
  // with false if the connection is lost first.
  void publish(const AmqpPublication& p, std::function<void(bool ok)> confirmed);
  // Publishes and waits for the broker's confirm (receiving deliveries meanwhile).
  void publish_confirmed(const AmqpPublication& p) { publish_confirmed(&p, 1); }
  // Publishes `n` back to back, then waits for all their confirms.
  void publish_confirmed(const AmqpPublication* p, std::size_t n);
  // Dead-letter browsing on channel 3: `visit` sees each message (in queue order) and returns
  // whether to acknowledge (remove) it; the rest go back to the queue when the browse ends.
  struct Browsed {
    std::string message_id;
    std::string body;
    int attempts = 0;
    std::string error;
    int64_t failed_at_ms = 0;
    QueueHeaders headers;
  };
  void browse_dead(std::size_t max, const std::function<bool(const Browsed&)>& visit);
  std::size_t purge_dead();

 private:
  friend class AmqpLink;
  explicit AmqpSession(AmqpLink& link) : link_(link) {}
  bool open();     // connects, declares, consumes; false (logged) if it could not
  void close();    // politely, bounded
  void abandon();  // the connection is unusable: free it, fail pending confirms
  // Reads what the broker sent, waiting at most `timeout_ms` for the first frame (0: no wait).
  void pump(int timeout_ms);
  void handle_frame();
  void refresh_counts();
  void start_consuming();  // basic.qos + basic.consume on channel 1, once per connection
  int socket_fd() const;
  bool has_buffered() const;

  AmqpLink& link_;
  struct State;
  std::shared_ptr<State> state_;  // the rabbitmq-c connection and what hangs off it
  uint64_t generation_ = 0;
  bool consuming_ = false;
  std::set<uint64_t> unsettled_;  // delivered on this connection, neither acked nor rejected
  std::set<uint64_t> acked_;      // acked, not yet sent
};

}  // namespace clutch::mq
