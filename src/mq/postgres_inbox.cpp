#include "mq/postgres_inbox.hpp"

#include <fmt/format.h>

#include <memory>
#include <stdexcept>

#include "clutch/config.hpp"
#include "mq/libpq_api.hpp"
#include "mq/postgres_connection.hpp"
#include "mq/postgres_url.hpp"
#include "mq/url_query.hpp"

namespace clutch::mq {
namespace {

// The statements' names on each connection (prepared once per connection).
constexpr const char* kInsert = "clutch_inbox_insert";
constexpr const char* kPrune = "clutch_inbox_prune";

// Any number, the same in every process: serialises the table's creation, which two sessions
// doing CREATE TABLE IF NOT EXISTS at once can fail (a duplicate key in pg_type).
constexpr const char* kCreate =
    "BEGIN; SELECT pg_advisory_xact_lock(7061723); "
    "CREATE TABLE IF NOT EXISTS clutch_inbox (source TEXT NOT NULL, queue TEXT NOT NULL, "
    "id TEXT NOT NULL, done_at BIGINT NOT NULL, PRIMARY KEY (source, queue, id)); "
    "CREATE INDEX IF NOT EXISTS clutch_inbox_done_at ON clutch_inbox (done_at); COMMIT";

int64_t millis_of(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

PostgresInbox::PostgresInbox(std::string url)
    : pq_(libpq_api()), url_(std::move(url)), shown_url_(redact_url(url_)) {
  try {
    // The queue's URL may serve as the inbox's too (the same database): its table= is the
    // queue's business.
    conninfo_ = is_postgres_url(url_) ? parse_postgres_url(url_).conninfo : url_;
    connect();
  } catch (const std::exception& e) {
    throw ConfigError(e.what());
  }
}

PostgresInbox::~PostgresInbox() {
  if (conn_ != nullptr) pq_.PQfinish(conn_);
}

void PostgresInbox::fail(const std::string& doing, const std::string& why) {
  throw std::runtime_error(fmt::format("inbox: '{}': {}: {}", shown_url_, doing, why));
}

void PostgresInbox::connect() {
  if (conn_ != nullptr) pq_.PQfinish(conn_);
  conn_ = nullptr;
  try {
    conn_ = pg_connect(pq_, conninfo_, 5);
  } catch (const std::exception& e) {
    fail("cannot connect", e.what());
  }
  exec(kCreate, "creating the table clutch_inbox");
  auto prepare = [&](const char* name, const char* sql, int params) {
    PGresult* r = pq_.PQprepare(conn_, name, sql, params, nullptr);
    bool ok = pq_.PQresultStatus(r) == PGRES_COMMAND_OK;
    std::string why = ok ? "" : pg_text(pq_.PQresultErrorMessage(r));
    pq_.PQclear(r);
    if (!ok)
      throw ConfigError(fmt::format("inbox: '{}' has a table clutch_inbox clutch cannot use ({})",
                                    shown_url_, why));
  };
  prepare(kInsert,
          "INSERT INTO clutch_inbox (source, queue, id, done_at) VALUES ($1, $2, $3, $4) "
          "ON CONFLICT (source, queue, id) DO NOTHING",
          4);
  prepare(kPrune, "DELETE FROM clutch_inbox WHERE done_at < $1", 1);
}

PGconn* PostgresInbox::connection() {
  if (conn_ == nullptr || pq_.PQstatus(conn_) != CONNECTION_OK) {
    try {
      connect();
    } catch (const ConfigError&) {
      throw;  // a table of another shape: not an outage
    } catch (const std::exception& e) {
      throw InboxUnavailable(e.what());
    }
  }
  return conn_;
}

void PostgresInbox::exec(const char* sql, const char* doing) {
  PGresult* r = pq_.PQexec(conn_, sql);
  ExecStatusType status = pq_.PQresultStatus(r);
  std::string why = pg_text(pq_.PQresultErrorMessage(r));
  pq_.PQclear(r);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return;
  if (pq_.PQtransactionStatus(conn_) == PQTRANS_INERROR) {
    PGresult* rollback = pq_.PQexec(conn_, "ROLLBACK");
    pq_.PQclear(rollback);
  }
  fail(doing, why.empty() ? pg_text(pq_.PQerrorMessage(conn_)) : why);
}

PostgresInbox::Result PostgresInbox::run_prepared(const char* name, int count,
                                                  const char* const* values, const char* doing) {
  Result r(pq_.PQexecPrepared(conn_, name, count, values, nullptr, nullptr, 0), pq_.PQclear);
  if (pq_.PQresultStatus(r.get()) != PGRES_COMMAND_OK)
    fail(doing, pg_text(pq_.PQresultErrorMessage(r.get())));
  return r;
}

PostgresInbox::Outcome PostgresInbox::run_once(const InboxKey& key,
                                               const std::function<void(PGconn*)>& work) {
  PGconn* conn = connection();
  auto rollback = [&] {
    // conn_, not conn: a reconnection replaced (and freed) the connection run_once began with.
    if (pq_.PQstatus(conn_) == CONNECTION_OK && pq_.PQtransactionStatus(conn_) != PQTRANS_IDLE) {
      PGresult* r = pq_.PQexec(conn_, "ROLLBACK");
      pq_.PQclear(r);
    }
  };
  try {
    try {
      exec("BEGIN", "beginning a transaction");
    } catch (const std::exception&) {
      // A connection the server closed since the last message (a restart) shows only now: one
      // new connection, at once.
      if (pq_.PQstatus(conn) == CONNECTION_OK) throw;
      conn = connection();
      exec("BEGIN", "beginning a transaction");
    }
    std::string done_at = std::to_string(millis_of(std::chrono::system_clock::now()));
    const char* values[] = {key.source.c_str(), key.queue.c_str(), key.id.c_str(), done_at.c_str()};
    if (std::string(pq_.PQcmdTuples(
            run_prepared(kInsert, 4, values, "recording a message").get())) == "0") {
      rollback();
      return Outcome::kAlreadyDone;
    }
    work(conn);
    switch (pq_.PQtransactionStatus(conn)) {
      case PQTRANS_INTRANS:
        break;
      case PQTRANS_INERROR:
        // A statement of the handler failed and it went on: COMMIT would quietly roll back.
        throw std::runtime_error(
            "a statement of the handler failed (its error went unchecked): rolled back");
      default:
        throw std::runtime_error(
            "the handler ended the inbox's transaction (no BEGIN, COMMIT or ROLLBACK in a "
            "handler)");
    }
    exec("COMMIT", "committing");
    return Outcome::kRan;
  } catch (const std::exception& e) {
    bool broken = pq_.PQstatus(conn_) != CONNECTION_OK;
    rollback();
    // Whatever the handler made of it, a connection that broke is an outage (the commit's fate
    // too, if it broke then: a redelivery finds the key if it committed).
    if (broken && dynamic_cast<const InboxUnavailable*>(&e) == nullptr)
      throw InboxUnavailable(
          fmt::format("inbox: '{}': the connection broke: {}", shown_url_, e.what()));
    throw;
  } catch (...) {
    rollback();
    throw;
  }
}

std::size_t PostgresInbox::prune(std::chrono::system_clock::time_point before) {
  connection();
  std::string at = std::to_string(millis_of(before));
  const char* values[] = {at.c_str()};
  return std::stoul(pq_.PQcmdTuples(run_prepared(kPrune, 1, values, "pruning").get()));
}

}  // namespace clutch::mq
