// The clutch side of bench/mq: consume BENCH_QUEUE on every worker with an empty handler, or,
// for the inbox's cost, with a handler that writes one row per message into a SQLite database:
//   BENCH_EFFECT=PATH   App::consume, the row in its own (autocommit) transaction
//   BENCH_INBOX=PATH    App::consume_exactly_once, the row in the inbox's transaction
#include <sqlite3.h>
#include <clutch/app.hpp>
#include <clutch/mq.hpp>

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace {

void insert_row(sqlite3* db, const std::string& body) {
  static thread_local sqlite3_stmt* insert = nullptr;
  static thread_local sqlite3* prepared_on = nullptr;
  if (prepared_on != db) {
    sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS effects (body TEXT NOT NULL)", nullptr, nullptr,
                 nullptr);
    sqlite3_finalize(insert);
    sqlite3_prepare_v2(db, "INSERT INTO effects (body) VALUES (?)", -1, &insert, nullptr);
    prepared_on = db;
  }
  sqlite3_bind_text(insert, 1, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
  int rc = sqlite3_step(insert);
  sqlite3_reset(insert);
  if (rc != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db));
}

sqlite3* own_connection(const char* path) {
  static sqlite3* db = nullptr;  // one per worker process, opened at its first message
  if (db == nullptr) {
    sqlite3_open(path, &db);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", nullptr, nullptr,
                 nullptr);
  }
  return db;
}

}  // namespace

int main(int argc, char** argv) {
  clutch::App app("bench-mq");
  clutch::ConsumeOptions options{
      .name = "bench", .url = std::getenv("BENCH_QUEUE"), .max_in_flight_per_worker = 256};
  if (const char* inbox = std::getenv("BENCH_INBOX")) {
    options.inbox = std::string("sqlite:") + inbox;
    app.consume_exactly_once(
        options, [](clutch::Context&, const clutch::QueueMessage& m, clutch::Transaction& tx) {
          insert_row(tx.sqlite(), m.body);
        });
  } else if (const char* effect = std::getenv("BENCH_EFFECT")) {
    app.consume(options, [effect](clutch::Context&, const clutch::QueueMessage& m) {
      insert_row(own_connection(effect), m.body);
    });
  } else {
    app.consume(options, [](clutch::Context&, const clutch::QueueMessage&) {});
  }
  return app.run(argc, argv);
}
