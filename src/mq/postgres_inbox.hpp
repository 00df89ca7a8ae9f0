// The exactly-once inbox on PostgreSQL (issue 23): as mq/sqlite_inbox.hpp, on a database the
// application owns and many hosts can share. A handled message's key is inserted first in the
// handler's transaction (INSERT ... ON CONFLICT DO NOTHING): a second worker given the same
// message waits on that row until the first commits (then finds it, and does not run) or rolls
// back (then runs it itself). The table is `clutch_inbox`, created if missing.
//
// Each worker holds its own connection; one that breaks is made again at the next message.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "mq/inbox_key.hpp"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace clutch::mq {

struct LibpqApi;

class PostgresInbox {
 public:
  // Connects to `url` (postgres://USER:PASSWORD@HOST:PORT/DB, or any libpq connection string)
  // and creates the table; throws ConfigError naming the URL (without its password) when it
  // cannot connect, or when a table clutch_inbox of another shape is there.
  explicit PostgresInbox(std::string url);
  ~PostgresInbox();
  PostgresInbox(const PostgresInbox&) = delete;
  PostgresInbox& operator=(const PostgresInbox&) = delete;

  using Outcome = InboxOutcome;
  // In one transaction: records `key` unless it is recorded (kAlreadyDone: nothing runs), then
  // `work(conn)` makes its writes on this connection and all of it commits together (kRan). If
  // `work` throws, one of its statements failed, or the commit fails, everything rolls back and
  // an exception says why: the message is not done, and its redelivery runs it in full.
  Outcome run_once(const InboxKey& key, const std::function<void(PGconn* conn)>& work);
  // Forgets the keys recorded before `before`; returns how many.
  std::size_t prune(std::chrono::system_clock::time_point before);
  // The connection (made again if it broke), for the outbox's statements.
  PGconn* handle() { return connection(); }
  // The database, as libpq is given it.
  const std::string& conninfo() const { return conninfo_; }

 private:
  // A connection with the table made and the statements prepared: the one open, or a new one if
  // it broke. Throws std::runtime_error saying why not.
  PGconn* connection();
  void connect();
  // Runs the prepared statement `name` on the connection; throws with `doing` unless it completed.
  using Result = std::unique_ptr<PGresult, void (*)(PGresult*)>;
  Result run_prepared(const char* name, int count, const char* const* values, const char* doing);
  // Runs `sql` (statements without parameters); throws with `doing` unless it succeeded.
  void exec(const char* sql, const char* doing);
  [[noreturn]] void fail(const std::string& doing, const std::string& why);

  const LibpqApi& pq_;
  std::string url_;
  std::string conninfo_;   // url_ for libpq (without a queue's table=)
  std::string shown_url_;  // without its password
  PGconn* conn_ = nullptr;
};

}  // namespace clutch::mq
