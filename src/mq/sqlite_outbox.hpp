// The outbox's table on an SQLite inbox (mq/outbox.hpp), on the inbox's own connection.
#pragma once

#include <sqlite3.h>

#include "mq/outbox.hpp"

namespace clutch::mq {

struct SqliteApi;

class SqliteOutbox final : public OutboxStore {
 public:
  // Creates clutch_outbox if missing; throws ConfigError naming the file if it cannot.
  SqliteOutbox(sqlite3* db, std::string path);
  ~SqliteOutbox() override;
  SqliteOutbox(const SqliteOutbox&) = delete;
  SqliteOutbox& operator=(const SqliteOutbox&) = delete;

  // The queue file that is the inbox's own ("sqlite:" + the inbox's path) gets the message
  // itself, in the transaction (an entry with id 0: nothing to relay).
  OutboxEntry stage(const std::string& url, std::string_view body) override;
  std::vector<OutboxEntry> claim_stale(std::size_t max) override;
  void remove(int64_t id) override;

 private:
  sqlite3_stmt* prepare(const char* sql);
  void step_done(sqlite3_stmt* s, const char* doing);

  const SqliteApi& sql_;
  sqlite3* db_;
  std::string path_;
  bool queue_ready_ = false;  // the inbox's file has the queue's tables
  sqlite3_stmt *stage_ = nullptr, *claim_ = nullptr, *remove_ = nullptr, *enqueue_ = nullptr,
               *any_stale_ = nullptr;
};

}  // namespace clutch::mq
