// Message queues consumed once per host: the agent holds the queue, hands each message to one
// worker (acknowledged send_random), and acknowledges it to the queue only after the worker's
// handler returned. A handler that throws is retried with back-off, then dead-lettered.
//
//   app.consume({.name = "orders", .url = "sqlite:/var/lib/app/queue.db"},
//               [](clutch::Context& ctx, const clutch::QueueMessage& m) { ... });
//
// Sources, chosen by URL: `sqlite:PATH` (an embedded durable queue in one SQLite file),
// `redis://HOST:PORT/STREAM?group=G` (a Redis Streams consumer group) and
// `amqp://USER:PASS@HOST:PORT/VHOST?queue=Q` (RabbitMQ or another AMQP 0-9-1 broker).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clutch/context.hpp"
#include "clutch/coro.hpp"

struct sqlite3;  // <sqlite3.h>, for Transaction::sqlite()
struct pg_conn;  // <libpq-fe.h>'s PGconn, for Transaction::postgres()

namespace clutch {

// A message's fields besides its body, in the broker's order (see `QueueMessage::headers`).
using QueueHeaders = std::vector<std::pair<std::string, std::string>>;

struct QueueMessage {
  std::string id;
  std::string body;
  int attempts = 0;  // earlier deliveries that failed
  // What the message carries besides its body, kept through retries, dead letters and requeues.
  // Redis: the entry's fields other than `body`, as written (XADD s * body B tenant t1 gives
  // {"tenant", "t1"}). AMQP: the headers table (values as text: strings as they are, numbers in
  // decimal, booleans true/false) and the properties that are set, as "amqp.content_type",
  // "amqp.content_encoding", "amqp.correlation_id", "amqp.reply_to", "amqp.type",
  // "amqp.app_id". SQLite: none.
  QueueHeaders headers;
  // The value of the first header called `name`, or nullptr.
  const std::string* header(std::string_view name) const {
    for (const auto& [key, value] : headers)
      if (key == name) return &value;
    return nullptr;
  }
};

struct ConsumeOptions {
  std::string name;  // names the consumer in logs and messenger actions ("mq:NAME")
  std::string url;   // sqlite:PATH, redis://..., amqp://...
  std::size_t max_in_flight_per_worker = 16;     // flow control: the agent holds no more
  int max_attempts = 5;                          // then the message is dead-lettered
  std::chrono::milliseconds retry_backoff{200};  // doubled per failed attempt
  std::chrono::milliseconds poll_interval{20};   // how often an empty queue is asked again
  // A message fetched and not settled within this is fetched again (by this or another
  // instance): longer than your slowest handler. A whole instance that dies is taken over
  // sooner on Redis (liveness keys, see docs/OPERATIONS.md "Running on many hosts").
  std::chrono::milliseconds visibility_timeout{30000};
  // The seed's bug, for demonstrations only: every worker handles every message.
  bool naive = false;
  // Exactly-once effects (App::consume_exactly_once): the application's own database, where the
  // handler's writes and the record that its message is done commit in one transaction.
  // "sqlite:PATH" (WAL; each worker its own connection), or a PostgreSQL database,
  // "postgres://USER:PASSWORD@HOST:PORT/DB" (libpq's URL; each worker its own connection). The
  // table clutch_inbox is created in it if missing.
  std::string inbox;
  // How long a done message's record is kept. A redelivery later than this runs again: keep it
  // longer than any message can stay in the queue unacknowledged (a week by default).
  std::chrono::hours inbox_retention{24 * 7};
};

using QueueHandler = std::function<void(Context&, const QueueMessage&)>;
// A coroutine handler (clutch/coro.hpp): the message is acknowledged when the Task ends, and
// failed (retried, then dead-lettered) if it throws, however many co_awaits it takes.
using AsyncQueueHandler = std::function<Task(Context&, QueueMessage)>;

// The transaction an exactly-once handler runs in (App::consume_exactly_once). Make the
// message's effects with statements on its connection and return: clutch records the message as
// done in the same transaction, commits, and only then acknowledges it to the queue. Throwing
// rolls all of it back and the message is retried. Do not BEGIN, COMMIT or ROLLBACK yourself.
class Transaction {
 public:
  virtual ~Transaction() = default;
  // The inbox's SQLite connection (a "sqlite:" inbox), inside BEGIN IMMEDIATE; else nullptr.
  virtual sqlite3* sqlite() const { return nullptr; }
  // The inbox's PostgreSQL connection (a "postgres://" inbox), inside BEGIN; else nullptr. A
  // statement that fails and is not thrown for fails the message anyway (it cannot commit).
  virtual pg_conn* postgres() const { return nullptr; }
  // The inbox's location as configured ("sqlite:PATH", "postgres://...").
  virtual const std::string& inbox() const = 0;
  // Publishes `body` to the queue at `url` with this transaction: sent if and only if it
  // commits. A queue in the inbox's own database (a postgres:// table there, or the sqlite:
  // queue file that is the inbox) gets its row inserted in this very transaction: exactly once
  // end to end, no relay. Any other queue gets it through the outbox: a row of clutch_outbox
  // committed here, published by this worker right after the commit and removed once the queue
  // has it; if the worker dies first (or the queue is down), a worker of the consumer publishes
  // it after 30 s. That relay is at least once; its Redis and AMQP messages carry the header
  // `clutch.outbox-id`, by which an exactly-once consumer downstream runs a repeat once.
  virtual void publish(const std::string& url, std::string_view body) = 0;
};

using ExactlyOnceHandler = std::function<void(Context&, const QueueMessage&, Transaction&)>;

// One App::consume declaration (the runtime's; apps use App::consume).
struct ConsumerDeclaration {
  ConsumeOptions options;
  QueueHandler handler;             // or
  AsyncQueueHandler async_handler;  // or
  ExactlyOnceHandler exactly_once_handler;
};

// Thrown by a source that cannot reach its queue right now and has already logged why (waiting
// to reconnect, or a connection still being set up): the caller just tries again later.
class QueueUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A message that failed max_attempts times, as its dead-letter place keeps it.
struct DeadLetter {
  std::string id;          // its id in the dead-letter place (what requeue and purge take)
  std::string message_id;  // the id it had in the queue (what the agent logged), if known
  std::string body;
  QueueHeaders headers;  // as the message had them
  int attempts = 0;
  std::string error;         // the last handler's error
  int64_t failed_at_ms = 0;  // Unix time in milliseconds
};

// A queue opened by URL; the agent's consumer and producers use the same interface.
class MessageSource {
 public:
  virtual ~MessageSource() = default;
  // Up to `max` messages that are visible now; each stays invisible to other fetches until it is
  // acked, retried or its visibility timeout passes. Never blocks for long.
  virtual std::vector<QueueMessage> fetch(std::size_t max) = 0;
  virtual void ack(const QueueMessage& message) = 0;
  // Acknowledges several at once (one round trip or transaction where the source allows).
  virtual void ack_many(const std::vector<QueueMessage>& messages) {
    for (const QueueMessage& m : messages) ack(m);
  }
  // Called by the agent's consumer: (re)connecting must not hold up the caller's event loop, so a
  // connection still being set up is reported by a throw and looked at again on the next call.
  // Producers keep the default: a call waits (boundedly) for its connection.
  virtual void avoid_blocking() {}
  // Sends acknowledgements a source gathered to batch them (Redis sends them with the next read).
  // The consumer calls it when it goes idle and before it stops.
  virtual void flush() {}
  // Called once when the consumer stops: sends what is gathered, waiting at most about a second.
  virtual void close() { flush(); }
  // Visible again after `delay`, with one more attempt counted.
  virtual void retry(const QueueMessage& message, std::chrono::milliseconds delay,
                     std::string_view error) = 0;
  // Visible again at once without counting an attempt (it was never handled: e.g. shutdown).
  virtual void release(const QueueMessage& message) = 0;
  // Moved to the dead-letter place with its last error.
  virtual void dead_letter(const QueueMessage& message, std::string_view error) = 0;
  virtual void publish(std::string_view body) = 0;
  // Publishes with headers (QueueMessage::headers): Redis writes them as the entry's fields, AMQP
  // as its headers table and the amqp.* properties. A source that carries none (SQLite) throws.
  virtual void publish_with_headers(std::string_view body, const QueueHeaders& headers) {
    if (!headers.empty()) throw std::runtime_error("this queue's messages carry no headers");
    publish(body);
  }
  // Publishes several, in order; returns once the queue holds all of them (AMQP pipelines them
  // under one wait for the broker's confirms). Throws as publish does.
  virtual void publish_many(const std::vector<std::string>& bodies) {
    for (const std::string& b : bodies) publish(b);
  }
  // Makes every message fetched by an earlier consumer that died visible again at once.
  virtual void recover_in_flight() = 0;
  virtual std::size_t pending() = 0;
  virtual std::size_t dead_letters() = 0;
  // Age of the oldest message not yet acknowledged, in milliseconds (-1: none, or unknown).
  virtual int64_t oldest_age_ms() { return -1; }
  // The oldest `max` dead letters.
  virtual std::vector<DeadLetter> list_dead(std::size_t max) = 0;
  // Moves dead letters back to the queue as new messages (attempts from 0); `ids` empty: all.
  // Returns how many moved; an id that is not there is skipped.
  virtual std::size_t requeue_dead(const std::vector<std::string>& ids) = 0;
  // Deletes dead letters for good; `ids` empty: all. Returns how many went.
  virtual std::size_t purge_dead(const std::vector<std::string>& ids) = 0;
  // Called by the agent's consumer: names this cluster instance (its consumer name, where the
  // URL did not give one), before any other call.
  virtual void name_instance(const std::string& instance) { (void)instance; }
  // Called once by the agent's consumer: a source that reads on a thread of its own calls `wake`
  // (from that thread) when messages arrive after a fetch came back empty, so the consumer fetches
  // at once instead of at its next poll. `wake` must not be called once the source is destroyed.
  virtual void set_waker(std::function<void()> wake) { (void)wake; }
  // Called by a consumer with an exactly-once inbox, which recognises a redelivery by its id:
  // every message fetched from now on must keep its id on every redelivery. AMQP republishes a
  // message without a message_id with one (and acks the original) before handing it out.
  virtual void require_stable_ids() {}
  // What names this queue in an inbox's keys, the same for every process that opens it and new
  // for a queue made anew, so that ids a new queue reuses are not taken for handled ones.
  // SQLite: a token kept in the file. Empty (the default): the URL without credentials.
  virtual std::string identity() { return {}; }
  // Called by the agent's consumer about once a second: says this consumer lives, and takes over
  // what consumers that stopped saying so left unacknowledged (Redis). Never blocks for long.
  virtual void keep_alive() {}
};

// Publishes from an event loop without blocking it (a worker's HTTP handler, a job): the queue's
// calls run on a thread of the producer's own, in order, and `done` runs on the context's loop
// once the queue holds the messages (AMQP: the broker confirmed them), or with the reason they
// could not be published. A broker that hangs delays `done`, never the loop.
//
//   auto orders = std::make_shared<clutch::Producer>(ctx, "amqp://...?queue=orders");
//   orders->publish(body, [ex](const std::string& error) mutable {
//     error.empty() ? ex.send(202, "queued\n") : ex.send(503, error + "\n");
//   });
class Producer {
 public:
  // Throws ConfigError for a bad URL (the connection itself is made on the producer's thread).
  Producer(Context& ctx, const std::string& url);
  // Publications still queued are abandoned (their `done` is not called) after at most ~1 s.
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  using Done = std::function<void(const std::string& error)>;  // empty: published
  void publish(std::string body, Done done);
  void publish_many(std::vector<std::string> bodies, Done done);
  // Publications handed to the producer whose `done` has not run yet.
  std::size_t in_flight() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Opens `url`; throws ConfigError with the reason for a bad URL or an unreachable queue.
std::unique_ptr<MessageSource> open_message_source(
    const std::string& url,
    std::chrono::milliseconds visibility_timeout = std::chrono::milliseconds(30000));

}  // namespace clutch
