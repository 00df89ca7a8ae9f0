// A queue in a PostgreSQL table: postgres://USER:PASSWORD@HOST:PORT/DB?table=T (issue 23).
//
// Table T holds the messages (id BIGSERIAL, body BYTEA, attempts, visible_at, created_at,
// last_error, leased_by), T_dead the dead letters, T_consumers the consumers' liveness; all three
// are created when T is missing, with a trigger that NOTIFYs channel T on every insert (a plain
// INSERT INTO T (body) VALUES (...) from any client publishes). A fetch claims the oldest visible
// rows with FOR UPDATE SKIP LOCKED and leases them to this consumer until the visibility timeout,
// so any number of instances share one table without taking a message twice; the database's
// clock decides what is visible, so hosts need not agree on the time. A consumer silent for 10 s
// has its leases taken over by another.
//
// Every call blocks on the database: the agent runs the source on a thread of its own
// (off_loop_source.hpp). A lost connection is made again with back-off (0.1 s to 5 s), each
// attempt logged; acknowledgements that met it are kept and sent once it is back. The agent's
// acks travel with its next claim (one round trip per batch), or on flush() when the queue is dry.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "clutch/mq.hpp"
#include "mq/claim_cursor.hpp"
#include "mq/postgres_url.hpp"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace clutch::mq {

struct LibpqApi;
class PostgresListener;

class PostgresSource final : public MessageSource {
 public:
  // Connects once: throws ConfigError when the server turns the connection away for good (no such
  // database or role, a wrong password) or T has a shape clutch cannot use. A server that does not
  // answer is only logged: the first call that needs it connects (with back-off).
  PostgresSource(PostgresUrl url, std::chrono::milliseconds visibility_timeout);
  ~PostgresSource() override;

  std::vector<QueueMessage> fetch(std::size_t max) override;
  void ack(const QueueMessage& message) override { ack_many({message}); }
  void ack_many(const std::vector<QueueMessage>& messages) override;
  void retry(const QueueMessage& message, std::chrono::milliseconds delay,
             std::string_view error) override;
  void release(const QueueMessage& message) override;
  void dead_letter(const QueueMessage& message, std::string_view error) override;
  void publish(std::string_view body) override;
  void publish_many(const std::vector<std::string>& bodies) override;
  void flush() override;
  void close() override;
  // Done at the next connection: the agent calls it on its own loop, which must not wait.
  void recover_in_flight() override { recover_ = true; }
  std::size_t pending() override;
  std::size_t dead_letters() override;
  int64_t oldest_age_ms() override;
  std::vector<DeadLetter> list_dead(std::size_t max) override;
  std::size_t requeue_dead(const std::vector<std::string>& ids) override;
  std::size_t purge_dead(const std::vector<std::string>& ids) override;
  // Only the agent's consumer calls it: from then on this source leases, and says it lives.
  void name_instance(const std::string& instance) override {
    consumer_ += "-" + instance;
    consuming_ = true;
  }
  void set_waker(std::function<void()> wake) override;
  void keep_alive() override;
  // "postgres:" and a random token kept as T's comment from its creation: a table made anew
  // counts its ids from 1 again, and must not be taken for the old one's handled ones. Empty
  // until the first connection (the agent asks again when it hands out a message).
  std::string identity() override;
  // How long a consumer may stay silent before another takes over its leases.
  static constexpr std::chrono::milliseconds kSilentFor{10000};
  // Acks the agent's consumer gathers before sending them without waiting for its next fetch.
  static constexpr std::size_t kMaxDeferredAcks = 1024;

 private:
  using Result = std::unique_ptr<PGresult, void (*)(PGresult*)>;
  // The open connection, or a new one (the table made, statements prepared); throws
  // QueueUnavailable while waiting out the back-off or when the attempt fails.
  PGconn* connection();
  void connect();
  void make_table(PGconn* conn);
  void prepare_statements(PGconn* conn);
  // Runs a prepared statement. Values are text except those whose length is given (binary);
  // `binary` asks for the results in binary. Throws with `doing` unless it succeeded; a broken
  // connection is dropped (the next call makes a new one) and QueueUnavailable thrown.
  Result run(const char* name, std::initializer_list<const std::string*> values, const char* doing,
             bool binary = false, const std::string* binary_value = nullptr);
  [[noreturn]] void lost(const std::string& doing, const std::string& why);
  void send_unsent_acks();
  std::size_t count(const char* name);

  const LibpqApi& pq_;
  PostgresUrl url_;
  std::string shown_;  // the URL without its password, for logs and errors
  std::chrono::milliseconds visibility_timeout_;
  std::string consumer_;  // the lease holder's name: clutch-HOSTNAME-INSTANCE
  PGconn* conn_ = nullptr;
  std::chrono::steady_clock::time_point next_connect_{};
  std::chrono::milliseconds reconnect_delay_{100};
  bool was_connected_ = false;
  bool recover_ = false;
  bool consuming_ = false;
  bool announced_ = false;  // this consumer's liveness row written on this connection
  std::mutex token_mutex_;  // identity() is asked from the agent's loop
  std::string token_;
  std::vector<std::string> unsent_acks_;  // ids whose DELETE met a lost connection
  // Wake-ups: a fetch asks the table only when the listener heard of an insert, the last fetch
  // was full, something was made visible here, or a second passed (retries and leases that come
  // due, and other instances' releases, notify no one).
  std::unique_ptr<PostgresListener> listener_;
  std::atomic<bool> notified_{true};
  bool maybe_more_ = true;
  std::chrono::steady_clock::time_point next_look_{};
  // Where the next claim starts: past this consumer's own leases, from the start at least as
  // often as a consumer that heard nothing looks (kLookEvery; mq/claim_cursor.hpp).
  ClaimCursor cursor_{std::chrono::seconds(1)};
};

}  // namespace clutch::mq
