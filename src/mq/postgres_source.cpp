#include "mq/postgres_source.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "clutch/config.hpp"
#include "common/host_name.hpp"
#include "mq/libpq_api.hpp"
#include "mq/postgres_connection.hpp"
#include "mq/postgres_listener.hpp"
#include "mq/url_query.hpp"

namespace clutch::mq {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// The database's clock in Unix milliseconds: leases and retries are timed by one clock for all
// hosts.
constexpr const char* kNow = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
// How often a consumer that heard nothing asks the table anyway.
constexpr auto kLookEvery = 1s;
// The token's prefix in T's comment.
constexpr std::string_view kTokenPrefix = "clutch-queue:";

// The statements, by name; {0} is the table, {1} the clock.
struct Statement {
  const char* name;
  const char* sql;
  int params;
};
constexpr Statement kStatements[] = {
    // The gathered acks ($4) travel with the claim: one round trip per batch. (The claim cannot
    // see the acked rows either way: they are leased.) The scan starts after id $5 (see
    // mq/claim_cursor.hpp), and reads the clock once (an InitPlan), not once per row it passes.
    {"clutch_q_fetch",
     "WITH acked AS (DELETE FROM {0} WHERE id = ANY($4::bigint[])), c AS (SELECT id FROM {0} "
     "WHERE id > $5 AND visible_at <= (SELECT {1}) ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) "
     "UPDATE {0} t SET visible_at = {1} + $2, leased_by = $3 FROM c WHERE t.id = c.id RETURNING "
     "t.id, t.body, t.attempts",
     5},
    {"clutch_q_ack", "DELETE FROM {0} WHERE id = ANY($1::bigint[])", 1},
    {"clutch_q_retry",
     "UPDATE {0} SET visible_at = {1} + $2, attempts = attempts + 1, last_error = $3, leased_by = "
     "NULL WHERE id = $1 AND leased_by = $4",
     4},
    {"clutch_q_release",
     "UPDATE {0} SET visible_at = 0, leased_by = NULL WHERE id = $1 AND leased_by = $2", 2},
    {"clutch_q_dead",
     "WITH m AS (DELETE FROM {0} WHERE id = $1 AND leased_by = $2 RETURNING id, body) INSERT INTO "
     "{0}_dead (id, body, attempts, error, failed_at) SELECT id, body, $3, $4, {1} FROM m ON "
     "CONFLICT (id) DO UPDATE SET body = EXCLUDED.body, attempts = EXCLUDED.attempts, error = "
     "EXCLUDED.error, failed_at = EXCLUDED.failed_at",
     4},
    {"clutch_q_publish", "INSERT INTO {0} (body) VALUES ($1)", 1},
    {"clutch_q_recover", "UPDATE {0} SET visible_at = 0, leased_by = NULL WHERE leased_by = $1", 1},
    {"clutch_q_alive",
     "INSERT INTO {0}_consumers (name, alive_at) VALUES ($1, {1}) ON CONFLICT (name) DO UPDATE "
     "SET alive_at = EXCLUDED.alive_at",
     1},
    {"clutch_q_take_over",
     // A holder that is gone, or was never there (it died before its first word).
     "WITH gone AS (DELETE FROM {0}_consumers WHERE alive_at < {1} - $1 RETURNING name) UPDATE {0} "
     "SET visible_at = 0, leased_by = NULL WHERE leased_by IS NOT NULL AND (leased_by IN (SELECT "
     "name FROM gone) OR leased_by NOT IN (SELECT name FROM {0}_consumers))",
     1},
    {"clutch_q_leave", "DELETE FROM {0}_consumers WHERE name = $1", 1},
    {"clutch_q_pending", "SELECT count(*) FROM {0}", 0},
    {"clutch_q_dead_count", "SELECT count(*) FROM {0}_dead", 0},
    {"clutch_q_oldest", "SELECT coalesce({1} - min(created_at), -1) FROM {0}", 0},
    {"clutch_q_list_dead",
     "SELECT id, body, attempts, coalesce(error, ''), failed_at FROM {0}_dead ORDER BY id LIMIT $1",
     1},
    {"clutch_q_requeue",
     "WITH d AS (DELETE FROM {0}_dead WHERE $1::bigint[] IS NULL OR id = ANY($1::bigint[]) "
     "RETURNING id, body) INSERT INTO {0} (body) SELECT body FROM d ORDER BY id",
     1},
    {"clutch_q_purge", "DELETE FROM {0}_dead WHERE $1::bigint[] IS NULL OR id = ANY($1::bigint[])",
     1},
};

// Made once, when T is missing, under a lock every clutch takes (two sessions creating the same
// table at once can fail on pg_type's unique index). The trigger makes every insert, from clutch
// or not, wake the consumers.
constexpr const char* kCreate = R"(
BEGIN;
SELECT pg_advisory_xact_lock(7061724, hashtext('{0}'));
CREATE TABLE IF NOT EXISTS {0} (id BIGSERIAL PRIMARY KEY, body BYTEA NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, visible_at BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL DEFAULT {1}, last_error TEXT, leased_by TEXT);
CREATE INDEX IF NOT EXISTS {0}_visible ON {0} (visible_at, id);
CREATE INDEX IF NOT EXISTS {0}_leased ON {0} (leased_by) WHERE leased_by IS NOT NULL;
CREATE TABLE IF NOT EXISTS {0}_dead (id BIGINT PRIMARY KEY, body BYTEA NOT NULL,
  attempts INTEGER NOT NULL, error TEXT, failed_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS {0}_consumers (name TEXT PRIMARY KEY, alive_at BIGINT NOT NULL);
CREATE OR REPLACE FUNCTION {0}_notify() RETURNS trigger LANGUAGE plpgsql
  AS $$BEGIN PERFORM pg_notify('{0}', ''); RETURN NULL; END$$;
CREATE OR REPLACE TRIGGER {0}_notify AFTER INSERT ON {0}
  FOR EACH STATEMENT EXECUTE FUNCTION {0}_notify();
DO $$BEGIN
  IF obj_description('{0}'::regclass, 'pg_class') IS NULL THEN
    EXECUTE 'COMMENT ON TABLE {0} IS ' ||
      quote_literal('{2}' || md5(random()::text || clock_timestamp()::text));
  END IF;
END$$;
COMMIT;
)";

// Ids as a PostgreSQL array literal, "{1,2,3}"; ids that are not numbers are left out (they
// name nothing in this table).
std::string id_array(const std::vector<std::string>& ids) {
  std::string out = "{";
  for (const std::string& id : ids) {
    int64_t n = 0;
    auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), n);
    if (ec != std::errc() || end != id.data() + id.size()) continue;
    if (out.size() > 1) out += ',';
    out += id;
  }
  return out + "}";
}

}  // namespace

PostgresSource::PostgresSource(PostgresUrl url, std::chrono::milliseconds visibility_timeout)
    : pq_(libpq_api()),
      url_(std::move(url)),
      shown_(redact_url(url_.conninfo) + "?table=" + url_.table),
      visibility_timeout_(visibility_timeout),
      consumer_("clutch-" + host_name()) {
  try {
    connect();
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    // Down or unreachable: not a reason to refuse the start (as a broker that is down is not).
    spdlog::warn("mq: postgres queue '{}': cannot connect ({}); will retry", shown_, e.what());
    next_connect_ = Clock::now() + reconnect_delay_;
  }
}

PostgresSource::~PostgresSource() {
  listener_.reset();  // its thread calls the waker, which may reach into this source
  if (conn_ != nullptr) pq_.PQfinish(conn_);
}

void PostgresSource::connect() {
  PGconn* conn = nullptr;
  try {
    conn = pg_connect(pq_, url_.conninfo, 5);
  } catch (const std::exception& e) {
    if (pg_refused_for_good(e.what()))
      throw ConfigError(fmt::format("mq: postgres queue '{}': {}", shown_, e.what()));
    throw;
  }
  try {
    make_table(conn);
    prepare_statements(conn);
  } catch (...) {
    pq_.PQfinish(conn);
    throw;
  }
  conn_ = conn;
  reconnect_delay_ = 100ms;
  if (was_connected_) spdlog::info("mq: postgres queue '{}': reconnected", shown_);
  was_connected_ = true;
  maybe_more_ = true;  // what came while away notified no one
  cursor_.rescan();    // nor did what other instances released meanwhile
  announced_ = false;
}

void PostgresSource::make_table(PGconn* conn) {
  auto comment = [&] {
    std::string sql = fmt::format(
        "SELECT to_regclass('{0}') IS NOT NULL, coalesce(obj_description(to_regclass('{0}'), "
        "'pg_class'), '')",
        url_.table);
    Result r(pq_.PQexec(conn, sql.c_str()), pq_.PQclear);
    if (pq_.PQresultStatus(r.get()) != PGRES_TUPLES_OK)
      throw std::runtime_error(pg_text(pq_.PQresultErrorMessage(r.get())));
    bool exists = std::string_view(pq_.PQgetvalue(r.get(), 0, 0)) == "t";
    return std::pair(exists, std::string(pq_.PQgetvalue(r.get(), 0, 1)));
  };
  auto [exists, token] = comment();
  if (!exists || token.empty()) {
    // Only a missing table (or one never given its token) takes the locks of CREATE.
    std::string sql = fmt::format(kCreate, url_.table, kNow, kTokenPrefix);
    Result r(pq_.PQexec(conn, sql.c_str()), pq_.PQclear);
    if (pq_.PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      std::string why = pg_text(pq_.PQresultErrorMessage(r.get()));
      Result rollback(pq_.PQexec(conn, "ROLLBACK"), pq_.PQclear);
      if (pq_.PQstatus(conn) != CONNECTION_OK) throw std::runtime_error(why);
      throw ConfigError(fmt::format(
          "mq: postgres queue '{}': table {} is not a clutch queue table and cannot be made one "
          "({}); name another with ?table=, and clutch creates it",
          shown_, url_.table, why));
    }
    token = comment().second;
  }
  std::lock_guard lock(token_mutex_);
  token_ = token;
}

void PostgresSource::prepare_statements(PGconn* conn) {
  for (const Statement& s : kStatements) {
    std::string sql = fmt::format(fmt::runtime(s.sql), url_.table, kNow);
    Result r(pq_.PQprepare(conn, s.name, sql.c_str(), s.params, nullptr), pq_.PQclear);
    if (pq_.PQresultStatus(r.get()) == PGRES_COMMAND_OK) continue;
    std::string why = pg_text(pq_.PQresultErrorMessage(r.get()));
    if (pq_.PQstatus(conn) != CONNECTION_OK) throw std::runtime_error(why);
    throw ConfigError(fmt::format(
        "mq: postgres queue '{}': table {} is not a clutch queue table ({}); name another with "
        "?table=, and clutch creates it",
        shown_, url_.table, why));
  }
}

PGconn* PostgresSource::connection() {
  if (conn_ != nullptr) return conn_;
  if (Clock::now() < next_connect_)
    throw QueueUnavailable(
        fmt::format("mq: postgres queue '{}': not connected; waiting to reconnect", shown_));
  try {
    connect();
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    next_connect_ = Clock::now() + reconnect_delay_;
    spdlog::warn("mq: postgres queue '{}': cannot connect ({}); next attempt in {} ms", shown_,
                 e.what(), reconnect_delay_.count());
    reconnect_delay_ = std::min(reconnect_delay_ * 2, std::chrono::milliseconds(5000));
    throw QueueUnavailable(
        fmt::format("mq: postgres queue '{}': cannot connect: {}", shown_, e.what()));
  }
  send_unsent_acks();
  return conn_;
}

void PostgresSource::lost(const std::string& doing, const std::string& why) {
  pq_.PQfinish(conn_);
  conn_ = nullptr;
  next_connect_ = Clock::now() + reconnect_delay_;
  spdlog::warn("mq: postgres queue '{}': connection lost while {} ({}); reconnecting with back-off",
               shown_, doing, why);
  throw QueueUnavailable(
      fmt::format("mq: postgres queue '{}': connection lost while {}: {}", shown_, doing, why));
}

PostgresSource::Result PostgresSource::run(const char* name,
                                           std::initializer_list<const std::string*> values,
                                           const char* doing, bool binary,
                                           const std::string* binary_value) {
  PGconn* conn = connection();
  const char* texts[8];
  int lengths[8] = {};
  int formats[8] = {};
  int n = 0;
  for (const std::string* v : values) {
    texts[n] = v != nullptr ? v->data() : nullptr;
    if (v != nullptr && v == binary_value) {
      lengths[n] = static_cast<int>(v->size());
      formats[n] = 1;
    }
    ++n;
  }
  Result r(pq_.PQexecPrepared(conn, name, n, texts, lengths, formats, binary ? 1 : 0), pq_.PQclear);
  ExecStatusType status = pq_.PQresultStatus(r.get());
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return r;
  std::string why = pg_text(pq_.PQresultErrorMessage(r.get()));
  if (why.empty()) why = pg_text(pq_.PQerrorMessage(conn));
  if (pq_.PQstatus(conn) != CONNECTION_OK) lost(doing, why);
  throw std::runtime_error(fmt::format("mq: postgres queue '{}': {}: {}", shown_, doing, why));
}

void PostgresSource::set_waker(std::function<void()> wake) {
  listener_ = std::make_unique<PostgresListener>(pq_, url_.conninfo, url_.table,
                                                 [this, wake = std::move(wake)] {
                                                   notified_ = true;
                                                   if (wake) wake();
                                                 });
}

std::vector<QueueMessage> PostgresSource::fetch(std::size_t max) {
  connection();
  if (consuming_ && !announced_) {
    // Known as alive before the first lease (a lease whose holder is unknown is taken over), and
    // again after a reconnection (it may have been silent long enough to be forgotten).
    run("clutch_q_alive", {&consumer_}, "saying this consumer lives");
    announced_ = true;
  }
  if (recover_) {
    // This consumer's name outlives its agent (one per cluster instance): what a predecessor
    // under the same master held is visible again at once rather than after its lease.
    run("clutch_q_recover", {&consumer_}, "recovering messages in flight");
    recover_ = false;
    cursor_.rescan();
  }
  auto now = Clock::now();
  bool notified = notified_.exchange(false);
  // Without a listener (a producer's clutchctl, tests) every fetch asks.
  if (listener_ != nullptr && !notified && !maybe_more_ && now < next_look_) {
    send_unsent_acks();
    return {};
  }
  next_look_ = now + kLookEvery;
  std::string limit = std::to_string(max);
  std::string lease = std::to_string(visibility_timeout_.count());
  std::string acks = id_array(unsent_acks_);
  std::string after = std::to_string(cursor_.next_start(now));
  Result r = run("clutch_q_fetch", {&limit, &lease, &consumer_, &acks, &after}, "fetching", true);
  unsent_acks_.clear();
  std::vector<QueueMessage> out;
  int rows = pq_.PQntuples(r.get());
  out.reserve(static_cast<std::size_t>(rows));
  for (int i = 0; i < rows; ++i) {
    QueueMessage m;
    std::int64_t id = pg_int8(pq_, r.get(), i, 0);
    cursor_.claimed(id);
    m.id = std::to_string(id);
    m.body = pg_bytes(pq_, r.get(), i, 1);
    m.attempts = pg_int4(pq_, r.get(), i, 2);
    out.push_back(std::move(m));
  }
  // RETURNING keeps no order: oldest first, as they were claimed.
  std::sort(out.begin(), out.end(), [](const QueueMessage& a, const QueueMessage& b) {
    return a.id.size() != b.id.size() ? a.id.size() < b.id.size() : a.id < b.id;
  });
  maybe_more_ = out.size() >= max;
  return out;
}

void PostgresSource::ack_many(const std::vector<QueueMessage>& messages) {
  for (const QueueMessage& m : messages) unsent_acks_.push_back(m.id);
  // The agent's consumer fetches again as soon as acks free its window, and flushes when the
  // queue runs dry: its acks wait for that fetch (a crash meanwhile redelivers them, as a crash
  // before any ack would). Anyone else's go at once.
  if (consuming_ && unsent_acks_.size() < kMaxDeferredAcks) return;
  try {
    send_unsent_acks();
  } catch (const QueueUnavailable&) {
    // Kept: they go first on the next connection. Until then the rows stay leased (and come
    // back after the lease, if this process dies meanwhile: at least once).
  }
}

void PostgresSource::send_unsent_acks() {
  if (unsent_acks_.empty() || conn_ == nullptr) return;
  std::string ids = id_array(unsent_acks_);
  run("clutch_q_ack", {&ids}, "acknowledging");
  unsent_acks_.clear();
}

void PostgresSource::retry(const QueueMessage& m, std::chrono::milliseconds delay,
                           std::string_view error) {
  std::string after = std::to_string(delay.count()), why(error);
  run("clutch_q_retry", {&m.id, &after, &why, &consumer_}, "scheduling a retry");
  next_look_ = std::min(next_look_, Clock::now() + delay);
  cursor_.rescan_by(Clock::now() + delay);
}

void PostgresSource::release(const QueueMessage& m) {
  run("clutch_q_release", {&m.id, &consumer_}, "releasing");
  maybe_more_ = true;
  cursor_.rescan();
}

void PostgresSource::dead_letter(const QueueMessage& m, std::string_view error) {
  std::string attempts = std::to_string(m.attempts + 1), why(error);
  run("clutch_q_dead", {&m.id, &consumer_, &attempts, &why}, "dead-lettering");
}

void PostgresSource::publish(std::string_view body) {
  std::string b(body);
  run("clutch_q_publish", {&b}, "publishing", false, &b);
}

void PostgresSource::publish_many(const std::vector<std::string>& bodies) {
  // One transaction: all of them or none (a failure halfway publishes nothing, so a retry of
  // the whole batch doubles nothing).
  PGconn* conn = connection();
  auto exec = [&](const char* sql) {
    Result r(pq_.PQexec(conn, sql), pq_.PQclear);
    if (pq_.PQresultStatus(r.get()) == PGRES_COMMAND_OK) return;
    std::string why = pg_text(pq_.PQerrorMessage(conn));
    if (pq_.PQstatus(conn) != CONNECTION_OK) lost("publishing", why);
    throw std::runtime_error(fmt::format("mq: postgres queue '{}': {}: {}", shown_, sql, why));
  };
  exec("BEGIN");
  try {
    for (const std::string& b : bodies) run("clutch_q_publish", {&b}, "publishing", false, &b);
    exec("COMMIT");
  } catch (...) {
    if (conn_ != nullptr) Result(pq_.PQexec(conn_, "ROLLBACK"), pq_.PQclear);
    throw;
  }
}

void PostgresSource::flush() {
  try {
    send_unsent_acks();
  } catch (const QueueUnavailable&) {
    // Kept for the next connection.
  }
}

void PostgresSource::keep_alive() {
  try {
    send_unsent_acks();
    run("clutch_q_alive", {&consumer_}, "saying this consumer lives");
    std::string silent = std::to_string(kSilentFor.count());
    Result r = run("clutch_q_take_over", {&silent}, "taking over silent consumers' messages");
    if (std::string taken = pq_.PQcmdTuples(r.get()); taken != "0" && !taken.empty()) {
      spdlog::warn("mq: postgres queue '{}': took over {} message(s) of consumers silent for {} s",
                   shown_, taken, kSilentFor.count() / 1000);
      maybe_more_ = true;
      cursor_.rescan();
    }
  } catch (const QueueUnavailable&) {
    // Reconnecting: fetch reports it.
  }
}

void PostgresSource::close() {
  if (conn_ == nullptr) return;
  try {
    send_unsent_acks();
    // The workers stopped first: what is still leased here was read ahead, never handed out.
    if (consuming_) run("clutch_q_recover", {&consumer_}, "releasing what was read ahead");
    run("clutch_q_leave", {&consumer_}, "leaving");
  } catch (const std::exception& e) {
    spdlog::warn("{}", e.what());
  }
}

std::string PostgresSource::identity() {
  std::lock_guard lock(token_mutex_);
  return token_.empty() ? std::string() : "postgres:" + token_;
}

std::size_t PostgresSource::count(const char* name) {
  Result r = run(name, {}, "counting", true);
  return static_cast<std::size_t>(pg_int8(pq_, r.get(), 0, 0));
}

std::size_t PostgresSource::pending() {
  return count("clutch_q_pending");
}

std::size_t PostgresSource::dead_letters() {
  return count("clutch_q_dead_count");
}

int64_t PostgresSource::oldest_age_ms() {
  Result r = run("clutch_q_oldest", {}, "reading the oldest message's age", true);
  return pg_int8(pq_, r.get(), 0, 0);
}

std::vector<DeadLetter> PostgresSource::list_dead(std::size_t max) {
  std::string limit = std::to_string(max);
  Result r = run("clutch_q_list_dead", {&limit}, "listing dead letters", true);
  std::vector<DeadLetter> out;
  for (int i = 0; i < pq_.PQntuples(r.get()); ++i) {
    DeadLetter d;
    d.id = std::to_string(pg_int8(pq_, r.get(), i, 0));
    d.message_id = d.id;  // a dead letter keeps its queue row's id
    d.body = pg_bytes(pq_, r.get(), i, 1);
    d.attempts = pg_int4(pq_, r.get(), i, 2);
    d.error = pg_bytes(pq_, r.get(), i, 3);
    d.failed_at_ms = pg_int8(pq_, r.get(), i, 4);
    out.push_back(std::move(d));
  }
  return out;
}

std::size_t PostgresSource::requeue_dead(const std::vector<std::string>& ids) {
  std::string array = id_array(ids);
  // One statement: a dead letter is moved or stays, never both or neither.
  Result r = run("clutch_q_requeue", {ids.empty() ? nullptr : &array}, "requeueing dead letters");
  return std::stoul(pq_.PQcmdTuples(r.get()));
}

std::size_t PostgresSource::purge_dead(const std::vector<std::string>& ids) {
  std::string array = id_array(ids);
  Result r = run("clutch_q_purge", {ids.empty() ? nullptr : &array}, "purging dead letters");
  return std::stoul(pq_.PQcmdTuples(r.get()));
}

}  // namespace clutch::mq
