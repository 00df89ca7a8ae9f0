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
#include <span>
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
  using Item = InboxBatchItem<std::function<void(sqlite3* db)>>;
  // In one BEGIN IMMEDIATE transaction: if `key` is recorded, nothing runs (kAlreadyDone);
  // otherwise `work(db)` makes its writes on this connection, the key is recorded and all of it
  // commits together (kRan). If `work` throws, or the commit fails, everything rolls back and
  // the exception goes on: the message is not done, and its redelivery runs it in full.
  Outcome run_once(const InboxKey& key, const std::function<void(sqlite3* db)>& work);
  // Group commit: runs items from the front as run_once would, but several in one transaction,
  // each in a savepoint of its own (one that throws rolls back alone and keeps its error), and
  // commits them together: one WAL write and one lock round for the lot instead of one each.
  // Stops before an item once `budget` has passed or when its key repeats one of this
  // transaction (its outcome depends on that one's commit). Returns how many items it settled
  // (at least one); a failed commit gives every item that ran its error. Throws, settling
  // nothing, only when no transaction could begin.
  std::size_t run_batch(std::span<Item> items, std::chrono::steady_clock::duration budget);
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
  sqlite3_stmt *savepoint_ = nullptr, *release_ = nullptr, *rollback_to_ = nullptr;
};

}  // namespace clutch::mq
