// The exactly-once inbox on SQLite (issue 23, its first step): a handler's writes and the record
// of its message's identity commit in one transaction on the application's own database, so a
// redelivered message (a worker, agent, master or host that died after the commit and before the
// ack) is recognised and acknowledged without running the handler again; one that died before
// the commit left nothing behind, and runs again in full.
//
// Each worker opens its own SqliteInbox (its own connection; WAL lets them write in turn and read
// at once). The table it keeps is `clutch_inbox`, created if missing, beside the app's tables.
// Pure storage: the runtime decides when to run a message through it and when to ack.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <functional>
#include <string>

#include "mq/inbox_key.hpp"

namespace clutch::mq {

struct SqliteApi;

class SqliteInbox {
 public:
  // Opens (creating) the database at `path` in WAL mode and the inbox table; throws ConfigError
  // naming the path when it cannot be opened, or when a table of that name has another shape.
  explicit SqliteInbox(const std::string& path,
                       std::chrono::milliseconds busy_timeout = std::chrono::seconds(5));
  ~SqliteInbox();
  SqliteInbox(const SqliteInbox&) = delete;
  SqliteInbox& operator=(const SqliteInbox&) = delete;

  using Outcome = InboxOutcome;
  // In one BEGIN IMMEDIATE transaction: if `key` is recorded, nothing runs (kAlreadyDone);
  // otherwise `work(db)` makes its writes on this connection, the key is recorded and all of it
  // commits together (kRan). If `work` throws, or the commit fails, everything rolls back and
  // the exception goes on: the message is not done, and its redelivery runs it in full.
  Outcome run_once(const InboxKey& key, const std::function<void(sqlite3* db)>& work);
  // Whether `key` is recorded (a committed run).
  bool recorded(const InboxKey& key);
  // Forgets the keys recorded before `before`; returns how many. A message redelivered after its
  // key was pruned runs again: the retention bounds both the table and the guarantee.
  std::size_t prune(std::chrono::system_clock::time_point before);
  // The connection, for the application's own statements outside a run.
  sqlite3* handle() const { return db_; }

 private:
  void exec(const char* sql);
  [[noreturn]] void fail(const std::string& doing);
  const SqliteApi& sql_;
  std::string path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* find_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* prune_ = nullptr;
  sqlite3_stmt *begin_ = nullptr, *commit_ = nullptr, *rollback_ = nullptr;
};

}  // namespace clutch::mq
