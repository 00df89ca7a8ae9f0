#include "mq/sqlite_source.hpp"

#include <fmt/format.h>

#include <charconv>
#include <optional>
#include <stdexcept>

#include "clutch/config.hpp"
#include "mq/sqlite_api.hpp"

namespace clutch::mq {
namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using Reset = StatementReset;

}  // namespace

// BEGIN IMMEDIATE now; ROLLBACK unless commit() succeeded, however the scope ends. A failed
// COMMIT must not leave the transaction open: every later BEGIN on this handle would fail.
class SqliteSource::Transaction {
 public:
  explicit Transaction(SqliteSource& q) : q_(q) { q_.exec("BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!committed_) q_.sql_.sqlite3_exec(q_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    q_.exec("COMMIT");
    committed_ = true;
  }

 private:
  SqliteSource& q_;
  bool committed_ = false;
};

SqliteSource::SqliteSource(const std::string& path, std::chrono::milliseconds visibility_timeout)
    : sql_(sqlite_api()), path_(path), visibility_timeout_(visibility_timeout) {
  if (sql_.sqlite3_open_v2(path.c_str(), &db_,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr) != SQLITE_OK) {
    std::string why = db_ != nullptr ? sql_.sqlite3_errmsg(db_) : "out of memory";
    sql_.sqlite3_close(db_);
    db_ = nullptr;
    throw ConfigError(fmt::format("mq: cannot open sqlite queue '{}': {}", path, why));
  }
  sql_.sqlite3_busy_timeout(db_, 5000);  // several producers share the file
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=NORMAL");
  exec(
      "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT "
      "NULL,"
      " attempts INTEGER NOT NULL DEFAULT 0, visible_at INTEGER NOT NULL DEFAULT 0,"
      " created_at INTEGER NOT NULL, last_error TEXT)");
  exec("CREATE INDEX IF NOT EXISTS messages_visible ON messages (visible_at, id)");
  exec("CREATE TABLE IF NOT EXISTS queue_identity (token TEXT NOT NULL)");
  auto read_token = [&] {
    sqlite3_stmt* s = prepare("SELECT token FROM queue_identity LIMIT 1");
    if (sql_.sqlite3_step(s) == SQLITE_ROW)
      token_ = reinterpret_cast<const char*>(sql_.sqlite3_column_text(s, 0));
    sql_.sqlite3_finalize(s);
  };
  read_token();
  if (token_.empty()) {
    // Only a new file takes the write lock for it (not every producer that opens the queue); in
    // one transaction, so that two processes creating the file at once agree on one token.
    exec(
        "BEGIN IMMEDIATE; INSERT INTO queue_identity SELECT lower(hex(randomblob(16)))"
        " WHERE NOT EXISTS (SELECT 1 FROM queue_identity); COMMIT");
    read_token();
  }
  exec(
      "CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY, body BLOB NOT NULL,"
      " attempts INTEGER NOT NULL, error TEXT, failed_at INTEGER NOT NULL)");
  select_ =
      prepare("SELECT id, body, attempts FROM messages WHERE visible_at <= ? ORDER BY id LIMIT ?");
  hide_ = prepare("UPDATE messages SET visible_at = ? WHERE id = ?");
  delete_ = prepare("DELETE FROM messages WHERE id = ?");
  retry_ = prepare(
      "UPDATE messages SET visible_at = ?, attempts = attempts + 1, last_error = ? WHERE id = ?");
  insert_ = prepare("INSERT INTO messages (body, created_at) VALUES (?, ?)");
  dead_ = prepare(
      "INSERT OR REPLACE INTO dead_letters (id, body, attempts, error, failed_at) VALUES (?, ?, ?, "
      "?, ?)");
}

SqliteSource::~SqliteSource() {
  for (sqlite3_stmt* s : {select_, hide_, delete_, retry_, insert_, dead_})
    sql_.sqlite3_finalize(s);
  sql_.sqlite3_close(db_);
}

void SqliteSource::exec(const char* sql) {
  char* error = nullptr;
  if (sql_.sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string why = error != nullptr ? error : "unknown error";
    sql_.sqlite3_free(error);
    throw std::runtime_error(fmt::format("mq: sqlite queue '{}': {}: {}", path_, sql, why));
  }
}

void SqliteSource::step_done(sqlite3_stmt* stmt, const char* doing, std::string_view id) {
  if (sql_.sqlite3_step(stmt) != SQLITE_DONE) {
    throw std::runtime_error(fmt::format("mq: sqlite queue '{}': {} {}: {}", path_, doing, id,
                                         sql_.sqlite3_errmsg(db_)));
  }
}

sqlite3_stmt* SqliteSource::prepare(const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sql_.sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    throw std::runtime_error(
        fmt::format("mq: sqlite queue '{}': {}", path_, sql_.sqlite3_errmsg(db_)));
  }
  return stmt;
}

std::vector<QueueMessage> SqliteSource::fetch(std::size_t max) {
  std::vector<QueueMessage> out;
  int64_t now = now_ms();
  // One write transaction: select the visible ones and hide them together, so two consumers
  // never take the same message.
  Transaction tx(*this);
  {
    Reset r{sql_, select_};
    sql_.sqlite3_bind_int64(select_, 1, now);
    sql_.sqlite3_bind_int64(select_, 2, static_cast<int64_t>(max));
    int rc;
    while ((rc = sql_.sqlite3_step(select_)) == SQLITE_ROW) {
      QueueMessage m;
      m.id = std::to_string(sql_.sqlite3_column_int64(select_, 0));
      m.body.assign(static_cast<const char*>(sql_.sqlite3_column_blob(select_, 1)),
                    static_cast<std::size_t>(sql_.sqlite3_column_bytes(select_, 1)));
      m.attempts = sql_.sqlite3_column_int(select_, 2);
      out.push_back(std::move(m));
    }
    if (rc != SQLITE_DONE) {
      throw std::runtime_error(
          fmt::format("mq: sqlite queue '{}': fetching: {}", path_, sql_.sqlite3_errmsg(db_)));
    }
  }
  for (const QueueMessage& m : out) {
    Reset r{sql_, hide_};
    sql_.sqlite3_bind_int64(hide_, 1, now + visibility_timeout_.count());
    sql_.sqlite3_bind_int64(hide_, 2, std::stoll(m.id));
    step_done(hide_, "hiding fetched message", m.id);
  }
  tx.commit();
  return out;
}

void SqliteSource::ack(const QueueMessage& m) {
  Reset r{sql_, delete_};
  sql_.sqlite3_bind_int64(delete_, 1, std::stoll(m.id));
  step_done(delete_, "acknowledging", m.id);
}

void SqliteSource::ack_many(const std::vector<QueueMessage>& messages) {
  // All or nothing: a failure rolls every one back, and they come back after the visibility
  // timeout (a redelivery at worst, never an ack that was reported and not made).
  Transaction tx(*this);
  for (const QueueMessage& m : messages) {
    Reset r{sql_, delete_};
    sql_.sqlite3_bind_int64(delete_, 1, std::stoll(m.id));
    step_done(delete_, "acknowledging", m.id);
  }
  tx.commit();
}

void SqliteSource::retry(const QueueMessage& m, std::chrono::milliseconds delay,
                         std::string_view error) {
  Reset r{sql_, retry_};
  sql_.sqlite3_bind_int64(retry_, 1, now_ms() + delay.count());
  sql_.sqlite3_bind_text(retry_, 2, error.data(), static_cast<int>(error.size()), SQLITE_TRANSIENT);
  sql_.sqlite3_bind_int64(retry_, 3, std::stoll(m.id));
  step_done(retry_, "scheduling a retry of", m.id);
}

void SqliteSource::release(const QueueMessage& m) {
  Reset r{sql_, hide_};
  sql_.sqlite3_bind_int64(hide_, 1, 0);
  sql_.sqlite3_bind_int64(hide_, 2, std::stoll(m.id));
  step_done(hide_, "releasing", m.id);
}

void SqliteSource::dead_letter(const QueueMessage& m, std::string_view error) {
  // Copied and deleted together: a failed copy must not delete the message.
  Transaction tx(*this);
  {
    Reset r{sql_, dead_};
    sql_.sqlite3_bind_int64(dead_, 1, std::stoll(m.id));
    sql_.sqlite3_bind_blob(dead_, 2, m.body.data(), static_cast<int>(m.body.size()),
                           SQLITE_TRANSIENT);
    sql_.sqlite3_bind_int(dead_, 3, m.attempts + 1);
    sql_.sqlite3_bind_text(dead_, 4, error.data(), static_cast<int>(error.size()),
                           SQLITE_TRANSIENT);
    sql_.sqlite3_bind_int64(dead_, 5, now_ms());
    step_done(dead_, "dead-lettering", m.id);
  }
  {
    Reset r{sql_, delete_};
    sql_.sqlite3_bind_int64(delete_, 1, std::stoll(m.id));
    step_done(delete_, "removing dead-lettered", m.id);
  }
  tx.commit();
}

void SqliteSource::publish(std::string_view body) {
  Reset r{sql_, insert_};
  sql_.sqlite3_bind_blob(insert_, 1, body.data(), static_cast<int>(body.size()), SQLITE_TRANSIENT);
  sql_.sqlite3_bind_int64(insert_, 2, now_ms());
  if (sql_.sqlite3_step(insert_) != SQLITE_DONE) {
    throw std::runtime_error(
        fmt::format("mq: sqlite publish to '{}': {}", path_, sql_.sqlite3_errmsg(db_)));
  }
}

void SqliteSource::recover_in_flight() {
  // Only the host's one consuming agent calls this, at its start: whatever is hidden was taken by
  // a predecessor that died, and waiting out the visibility timeout would only delay it.
  exec("UPDATE messages SET visible_at = 0 WHERE visible_at > 0 AND last_error IS NULL");
}

std::size_t SqliteSource::count(const char* sql) {
  sqlite3_stmt* s = prepare(sql);
  int rc = sql_.sqlite3_step(s);
  auto n = rc == SQLITE_ROW ? static_cast<std::size_t>(sql_.sqlite3_column_int64(s, 0)) : 0;
  sql_.sqlite3_finalize(s);
  if (rc != SQLITE_ROW) {
    throw std::runtime_error(
        fmt::format("mq: sqlite queue '{}': {}", path_, sql_.sqlite3_errmsg(db_)));
  }
  return n;
}

std::size_t SqliteSource::pending() {
  return count("SELECT count(*) FROM messages");
}
std::size_t SqliteSource::dead_letters() {
  return count("SELECT count(*) FROM dead_letters");
}

int64_t SqliteSource::oldest_age_ms() {
  if (count("SELECT count(*) FROM messages") == 0) return -1;
  auto oldest = static_cast<int64_t>(count("SELECT min(created_at) FROM messages"));
  return std::max<int64_t>(0, now_ms() - oldest);
}

std::vector<DeadLetter> SqliteSource::list_dead(std::size_t max) {
  sqlite3_stmt* s =
      prepare("SELECT id, body, attempts, error, failed_at FROM dead_letters ORDER BY id LIMIT ?");
  sql_.sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(max));
  std::vector<DeadLetter> out;
  int rc;
  while ((rc = sql_.sqlite3_step(s)) == SQLITE_ROW) {
    DeadLetter d;
    d.id = std::to_string(sql_.sqlite3_column_int64(s, 0));
    d.message_id = d.id;  // a dead letter keeps its queue row's id
    const void* body = sql_.sqlite3_column_blob(s, 1);
    d.body.assign(static_cast<const char*>(body),
                  static_cast<std::size_t>(sql_.sqlite3_column_bytes(s, 1)));
    d.attempts = sql_.sqlite3_column_int(s, 2);
    const unsigned char* error = sql_.sqlite3_column_text(s, 3);
    if (error != nullptr) d.error = reinterpret_cast<const char*>(error);
    d.failed_at_ms = sql_.sqlite3_column_int64(s, 4);
    out.push_back(std::move(d));
  }
  sql_.sqlite3_finalize(s);
  if (rc != SQLITE_DONE)
    throw std::runtime_error(
        fmt::format("mq: sqlite queue '{}': {}", path_, sql_.sqlite3_errmsg(db_)));
  return out;
}

std::size_t SqliteSource::move_dead(const std::vector<std::string>& ids, bool requeue) {
  // One transaction: a crash halfway neither loses a dead letter nor requeues it twice.
  Transaction tx(*this);
  std::size_t moved = 0;
  auto one = [&](const char* where, std::optional<int64_t> id) {
    if (requeue) {
      std::string sql = fmt::format(
          "INSERT INTO messages (body, created_at) SELECT body, {} FROM dead_letters {}", now_ms(),
          where);
      sqlite3_stmt* s = prepare(sql.c_str());
      if (id) sql_.sqlite3_bind_int64(s, 1, *id);
      int rc = sql_.sqlite3_step(s);
      sql_.sqlite3_finalize(s);
      if (rc != SQLITE_DONE)
        throw std::runtime_error(
            fmt::format("mq: requeueing in '{}': {}", path_, sql_.sqlite3_errmsg(db_)));
    }
    std::string sql = fmt::format("DELETE FROM dead_letters {}", where);
    sqlite3_stmt* s = prepare(sql.c_str());
    if (id) sql_.sqlite3_bind_int64(s, 1, *id);
    int rc = sql_.sqlite3_step(s);
    moved += static_cast<std::size_t>(sql_.sqlite3_changes(db_));
    sql_.sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
      throw std::runtime_error(
          fmt::format("mq: removing dead letters in '{}': {}", path_, sql_.sqlite3_errmsg(db_)));
  };
  if (ids.empty()) {
    one("", std::nullopt);
  } else {
    for (const std::string& text : ids) {
      int64_t id = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
      if (ec != std::errc() || end != text.data() + text.size()) continue;
      one("WHERE id = ?", id);
    }
  }
  tx.commit();
  return moved;
}

std::size_t SqliteSource::requeue_dead(const std::vector<std::string>& ids) {
  return move_dead(ids, true);
}

std::size_t SqliteSource::purge_dead(const std::vector<std::string>& ids) {
  return move_dead(ids, false);
}

}  // namespace clutch::mq
