// The embedded queue: one SQLite file in WAL mode, safe for several producer processes at once.
// Table `messages` holds the queue (visibility timeout, attempt count, last error); table
// `dead_letters` the messages that failed max_attempts times.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <string>

#include "clutch/mq.hpp"

namespace clutch::mq {

class SqliteSource final : public MessageSource {
 public:
  // Throws ConfigError when the file cannot be opened or created, std::runtime_error when the
  // SQLite library cannot be loaded.
  explicit SqliteSource(const std::string& path,
                        std::chrono::milliseconds visibility_timeout = std::chrono::seconds(30));
  ~SqliteSource() override;

  std::vector<QueueMessage> fetch(std::size_t max) override;
  void ack(const QueueMessage& message) override;
  void ack_many(const std::vector<QueueMessage>& messages) override;
  void retry(const QueueMessage& message, std::chrono::milliseconds delay,
             std::string_view error) override;
  void release(const QueueMessage& message) override;
  void dead_letter(const QueueMessage& message, std::string_view error) override;
  void publish(std::string_view body) override;
  void recover_in_flight() override;
  std::size_t pending() override;
  std::size_t dead_letters() override;
  int64_t oldest_age_ms() override;
  std::vector<DeadLetter> list_dead(std::size_t max) override;
  std::size_t requeue_dead(const std::vector<std::string>& ids) override;
  std::size_t purge_dead(const std::vector<std::string>& ids) override;
  // "sqlite:" and a random token the file keeps from its creation: ids count from 1 again in a
  // queue file made anew, and must not be taken for the old file's handled ones.
  std::string identity() override { return "sqlite:" + token_; }

 private:
  class Transaction;
  void exec(const char* sql);
  // Steps a write statement; throws with what it was doing unless it completed.
  void step_done(sqlite3_stmt* stmt, const char* doing, std::string_view id);
  sqlite3_stmt* prepare(const char* sql);
  std::size_t count(const char* sql);
  std::size_t move_dead(const std::vector<std::string>& ids, bool requeue);

  const struct SqliteApi& sql_;  // the library, loaded by the first queue opened (sqlite_api.hpp)
  std::string path_;
  std::string token_;
  sqlite3* db_ = nullptr;
  std::chrono::milliseconds visibility_timeout_;
  sqlite3_stmt *select_ = nullptr, *hide_ = nullptr, *delete_ = nullptr, *retry_ = nullptr,
               *insert_ = nullptr, *dead_ = nullptr;
};

}  // namespace clutch::mq
