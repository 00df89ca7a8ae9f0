#include "mq/sqlite_inbox.hpp"

#include <fmt/format.h>

#include <stdexcept>
#include <thread>

#include "clutch/config.hpp"
#include "mq/sqlite_api.hpp"

namespace clutch::mq {
namespace {

int64_t millis_of(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

using Reset = StatementReset;

// Binds the key's three parts to parameters 1-3 (the key outlives the statement's step).
void bind_key(const SqliteApi& sql, sqlite3_stmt* s, const InboxKey& key) {
  int i = 1;
  for (const std::string* part : {&key.source, &key.queue, &key.id})
    sql.sqlite3_bind_text(s, i++, part->data(), static_cast<int>(part->size()), SQLITE_STATIC);
}

}  // namespace

SqliteInbox::SqliteInbox(const std::string& path, std::chrono::milliseconds busy_timeout)
    : sql_(sqlite_api()), path_(path) {
  if (sql_.sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                           nullptr) != SQLITE_OK) {
    std::string why = db_ != nullptr ? sql_.sqlite3_errmsg(db_) : "out of memory";
    sql_.sqlite3_close(db_);
    db_ = nullptr;
    throw ConfigError(fmt::format("inbox: cannot open sqlite database '{}': {}", path, why));
  }
  try {
    sql_.sqlite3_busy_timeout(db_, static_cast<int>(busy_timeout.count()));
    // Every worker opens the file at once when the cluster starts; switching a new file to WAL
    // takes a lock the busy timeout does not wait for, so the setup is tried again, boundedly.
    auto deadline = std::chrono::steady_clock::now() + busy_timeout;
    for (;;) {
      try {
        exec("PRAGMA journal_mode=WAL");
        break;
      } catch (const ConfigError&) {
        int code = sql_.sqlite3_errcode(db_);
        if ((code != SQLITE_BUSY && code != SQLITE_LOCKED) ||
            std::chrono::steady_clock::now() > deadline)
          throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    exec("PRAGMA synchronous=NORMAL");  // WAL: a commit survives a crash of the process
    exec(
        "CREATE TABLE IF NOT EXISTS clutch_inbox (source TEXT NOT NULL, queue TEXT NOT NULL,"
        " id TEXT NOT NULL, done_at INTEGER NOT NULL, PRIMARY KEY (source, queue, id))"
        " WITHOUT ROWID");
    exec("CREATE INDEX IF NOT EXISTS clutch_inbox_done_at ON clutch_inbox (done_at)");
    auto prepare = [&](const char* text) {
      sqlite3_stmt* s = nullptr;
      if (sql_.sqlite3_prepare_v2(db_, text, -1, &s, nullptr) != SQLITE_OK)
        throw ConfigError(fmt::format("inbox: '{}' has a table clutch_inbox clutch cannot use ({})",
                                      path_, sql_.sqlite3_errmsg(db_)));
      return s;
    };
    find_ = prepare("SELECT 1 FROM clutch_inbox WHERE source = ? AND queue = ? AND id = ?");
    // Inserted first, ignored if there: one B-tree search tells whether it was recorded and
    // records it (rolled back with everything else if the handler fails).
    insert_ = prepare(
        "INSERT OR IGNORE INTO clutch_inbox (source, queue, id, done_at) VALUES (?, ?, ?, ?)");
    begin_ = prepare("BEGIN IMMEDIATE");
    commit_ = prepare("COMMIT");
    rollback_ = prepare("ROLLBACK");
    savepoint_ = prepare("SAVEPOINT clutch_message");
    release_ = prepare("RELEASE clutch_message");
    rollback_to_ = prepare("ROLLBACK TO clutch_message");
    prune_ = prepare("DELETE FROM clutch_inbox WHERE done_at < ?");
  } catch (...) {
    for (sqlite3_stmt* s :
         {find_, insert_, prune_, begin_, commit_, rollback_, savepoint_, release_, rollback_to_})
      sql_.sqlite3_finalize(s);
    sql_.sqlite3_close(db_);
    throw;
  }
}

SqliteInbox::~SqliteInbox() {
  for (sqlite3_stmt* s :
       {find_, insert_, prune_, begin_, commit_, rollback_, savepoint_, release_, rollback_to_})
    sql_.sqlite3_finalize(s);
  sql_.sqlite3_close(db_);
}

void SqliteInbox::exec(const char* text) {
  char* error = nullptr;
  if (sql_.sqlite3_exec(db_, text, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string why = error != nullptr ? error : sql_.sqlite3_errmsg(db_);
    sql_.sqlite3_free(error);
    throw ConfigError(fmt::format("inbox: '{}': {}: {}", path_, text, why));
  }
}

void SqliteInbox::fail(const std::string& doing) {
  throw std::runtime_error(
      fmt::format("inbox: '{}': {}: {}", path_, doing, sql_.sqlite3_errmsg(db_)));
}

bool SqliteInbox::recorded(const InboxKey& key) {
  Reset reset{sql_, find_};
  bind_key(sql_, find_, key);
  int rc = sql_.sqlite3_step(find_);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) fail("looking up a message");
  return rc == SQLITE_ROW;
}

SqliteInbox::Outcome SqliteInbox::run_once(const InboxKey& key,
                                           const std::function<void(sqlite3*)>& work) {
  Item item{key, work};
  run_batch({&item, 1}, {});
  if (item.error) std::rethrow_exception(item.error);
  return item.outcome;
}

std::size_t SqliteInbox::run_batch(std::span<Item> items,
                                   std::chrono::steady_clock::duration budget) {
  if (items.empty()) return 0;
  // Prepared once: sqlite3_exec would parse them for every message.
  auto step = [&](sqlite3_stmt* s) {
    Reset reset{sql_, s};
    return sql_.sqlite3_step(s) == SQLITE_DONE;
  };
  auto error_now = [&](const std::string& doing) {
    return std::make_exception_ptr(std::runtime_error(
        fmt::format("inbox: '{}': {}: {}", path_, doing, sql_.sqlite3_errmsg(db_))));
  };
  // IMMEDIATE: the write lock first, so two workers given the same message (a redelivery racing
  // the first run) cannot both find it unrecorded; the second waits, then finds the key.
  if (!step(begin_)) fail("beginning a transaction");
  auto deadline = std::chrono::steady_clock::now() + budget;
  auto repeats_earlier = [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      const InboxKey &a = items[i].key, &b = items[n].key;
      if (a.id == b.id && a.queue == b.queue && a.source == b.source) return true;
    }
    return false;
  };
  // The transaction ended under item n (its handler's COMMIT or ROLLBACK, or SQLite's own
  // rollback on an error): what the earlier ones ran is kept only if it was committed then.
  auto ended_at = [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      Item& earlier = items[i];
      if (earlier.outcome == Outcome::kRan && !earlier.error && !recorded(earlier.key))
        earlier.error = std::make_exception_ptr(std::runtime_error(
            "rolled back with another message's transaction (its handler ended it): not done"));
    }
    if (!items[n].error)
      items[n].error = std::make_exception_ptr(std::runtime_error(
          "the handler ended the inbox's transaction (no BEGIN, COMMIT or ROLLBACK in a "
          "handler)"));
    return n + 1;
  };
  std::size_t n = 0;
  for (; n < items.size(); ++n) {
    if (n > 0 && (std::chrono::steady_clock::now() >= deadline || repeats_earlier(n))) break;
    Item& item = items[n];
    item.outcome = Outcome::kRan;
    item.error = nullptr;
    if (!step(savepoint_)) {
      item.error = error_now("beginning a message's savepoint");
      if (sql_.sqlite3_get_autocommit(db_) != 0) return ended_at(n);
      continue;
    }
    bool recorded_now = false;
    {
      // Inserted first, ignored if there: one B-tree search tells whether it was recorded and
      // records it (rolled back with the message's savepoint if the handler fails).
      Reset reset{sql_, insert_};
      bind_key(sql_, insert_, item.key);
      sql_.sqlite3_bind_int64(insert_, 4, millis_of(std::chrono::system_clock::now()));
      if (sql_.sqlite3_step(insert_) == SQLITE_DONE)
        recorded_now = sql_.sqlite3_changes(db_) > 0;
      else
        item.error = error_now("recording a message");
    }
    if (!item.error && !recorded_now) {
      item.outcome = Outcome::kAlreadyDone;
    } else if (!item.error) {
      try {
        item.work(db_);
      } catch (...) {
        item.error = std::current_exception();
      }
    }
    if (sql_.sqlite3_get_autocommit(db_) != 0) return ended_at(n);
    if (item.error) step(rollback_to_);  // this message's writes and key, no one else's
    if (!step(release_)) {
      if (!item.error) item.error = error_now("releasing a message's savepoint");
      if (sql_.sqlite3_get_autocommit(db_) != 0) return ended_at(n);
    }
  }
  if (!step(commit_)) {
    std::exception_ptr why = error_now("committing");
    if (sql_.sqlite3_get_autocommit(db_) == 0) step(rollback_);
    for (std::size_t i = 0; i < n; ++i)
      if (items[i].outcome == Outcome::kRan && !items[i].error) items[i].error = why;
  }
  return n;
}

std::size_t SqliteInbox::prune(std::chrono::system_clock::time_point before) {
  Reset reset{sql_, prune_};
  sql_.sqlite3_bind_int64(prune_, 1, millis_of(before));
  if (sql_.sqlite3_step(prune_) != SQLITE_DONE) fail("pruning");
  return static_cast<std::size_t>(sql_.sqlite3_changes(db_));
}

}  // namespace clutch::mq
