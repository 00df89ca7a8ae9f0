#include "mq/sqlite_outbox.hpp"

#include <fmt/format.h>

#include <stdexcept>

#include "clutch/config.hpp"
#include "mq/sqlite_api.hpp"
#include "mq/sqlite_source.hpp"

namespace clutch::mq {

SqliteOutbox::SqliteOutbox(sqlite3* db, std::string path)
    : sql_(sqlite_api()), db_(db), path_(std::move(path)) {
  char* error = nullptr;
  if (sql_.sqlite3_exec(db_,
                        "CREATE TABLE IF NOT EXISTS clutch_outbox (id INTEGER PRIMARY KEY "
                        "AUTOINCREMENT, url TEXT NOT NULL, body BLOB NOT NULL, token TEXT NOT "
                        "NULL, claimed_until INTEGER NOT NULL)",
                        nullptr, nullptr, &error) != SQLITE_OK) {
    std::string why = error != nullptr ? error : "unknown error";
    sql_.sqlite3_free(error);
    throw ConfigError(fmt::format("outbox: '{}': {}", path_, why));
  }
  stage_ =
      prepare("INSERT INTO clutch_outbox (url, body, token, claimed_until) VALUES (?, ?, ?, ?)");
  claim_ = prepare(
      "UPDATE clutch_outbox SET claimed_until = ? WHERE id IN (SELECT id FROM clutch_outbox "
      "WHERE claimed_until < ? ORDER BY id LIMIT ?) RETURNING id, url, body, token");
  remove_ = prepare("DELETE FROM clutch_outbox WHERE id = ?");
  any_stale_ = prepare("SELECT 1 FROM clutch_outbox WHERE claimed_until < ? LIMIT 1");
}

SqliteOutbox::~SqliteOutbox() {
  for (sqlite3_stmt* s : {stage_, claim_, remove_, enqueue_, any_stale_}) sql_.sqlite3_finalize(s);
}

sqlite3_stmt* SqliteOutbox::prepare(const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sql_.sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK)
    throw ConfigError(fmt::format("outbox: '{}' has a table clutch_outbox clutch cannot use ({})",
                                  path_, sql_.sqlite3_errmsg(db_)));
  return s;
}

void SqliteOutbox::step_done(sqlite3_stmt* s, const char* doing) {
  StatementReset reset{sql_, s};
  if (sql_.sqlite3_step(s) != SQLITE_DONE)
    throw std::runtime_error(
        fmt::format("outbox: '{}': {}: {}", path_, doing, sql_.sqlite3_errmsg(db_)));
}

OutboxEntry SqliteOutbox::stage(const std::string& url, std::string_view body) {
  OutboxEntry e;
  auto blob = [&](sqlite3_stmt* s, int at) {
    sql_.sqlite3_bind_blob(s, at, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
  };
  if (url == "sqlite:" + path_) {
    if (!queue_ready_) {
      SqliteSource make_tables(path_);  // its own connection, once: the queue's tables
      enqueue_ = prepare("INSERT INTO messages (body, created_at) VALUES (?, ?)");
      queue_ready_ = true;
    }
    blob(enqueue_, 1);
    sql_.sqlite3_bind_int64(enqueue_, 2, outbox_now_ms());
    step_done(enqueue_, "publishing into the queue in the same file");
    return e;  // id 0: in the queue already
  }
  e.url = url;
  e.body = std::string(body);
  e.token = outbox_token();
  sql_.sqlite3_bind_text(stage_, 1, url.data(), static_cast<int>(url.size()), SQLITE_STATIC);
  blob(stage_, 2);
  sql_.sqlite3_bind_text(stage_, 3, e.token.data(), static_cast<int>(e.token.size()),
                         SQLITE_STATIC);
  sql_.sqlite3_bind_int64(stage_, 4, outbox_now_ms() + kOutboxClaim.count() * 1000);
  step_done(stage_, "staging a message");
  e.id = static_cast<int64_t>(sql_.sqlite3_last_insert_rowid(db_));
  return e;
}

std::vector<OutboxEntry> SqliteOutbox::claim_stale(std::size_t max) {
  int64_t now = outbox_now_ms();
  {
    // A read first: the UPDATE would take the database's write lock every sweep, from the
    // handlers' transactions, even with nothing to claim (the usual case).
    StatementReset reset{sql_, any_stale_};
    sql_.sqlite3_bind_int64(any_stale_, 1, now);
    if (sql_.sqlite3_step(any_stale_) != SQLITE_ROW) return {};
  }
  StatementReset reset{sql_, claim_};
  sql_.sqlite3_bind_int64(claim_, 1, now + kOutboxClaim.count() * 1000);
  sql_.sqlite3_bind_int64(claim_, 2, now);
  sql_.sqlite3_bind_int64(claim_, 3, static_cast<int64_t>(max));
  std::vector<OutboxEntry> out;
  int rc;
  while ((rc = sql_.sqlite3_step(claim_)) == SQLITE_ROW) {
    OutboxEntry e;
    e.id = sql_.sqlite3_column_int64(claim_, 0);
    e.url = reinterpret_cast<const char*>(sql_.sqlite3_column_text(claim_, 1));
    e.body.assign(static_cast<const char*>(sql_.sqlite3_column_blob(claim_, 2)),
                  static_cast<std::size_t>(sql_.sqlite3_column_bytes(claim_, 2)));
    e.token = reinterpret_cast<const char*>(sql_.sqlite3_column_text(claim_, 3));
    out.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE)
    throw std::runtime_error(
        fmt::format("outbox: '{}': claiming: {}", path_, sql_.sqlite3_errmsg(db_)));
  return out;
}

void SqliteOutbox::remove(int64_t id) {
  sql_.sqlite3_bind_int64(remove_, 1, id);
  step_done(remove_, "removing a relayed message");
}

}  // namespace clutch::mq
