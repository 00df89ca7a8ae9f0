#include "mq/postgres_outbox.hpp"

#include <fmt/format.h>

#include <stdexcept>

#include "clutch/config.hpp"
#include "mq/libpq_api.hpp"
#include "mq/postgres_connection.hpp"
#include "mq/postgres_source.hpp"
#include "mq/postgres_url.hpp"

namespace clutch::mq {

void PostgresOutbox::ResultDeleter::operator()(PGresult* r) const {
  pq->PQclear(r);
}

PostgresOutbox::PostgresOutbox(std::function<PGconn*()> connection, std::string conninfo)
    : pq_(libpq_api()), connection_(std::move(connection)), conninfo_(std::move(conninfo)) {
  try {
    run("BEGIN; SELECT pg_advisory_xact_lock(7061725); CREATE TABLE IF NOT EXISTS clutch_outbox "
        "(id BIGSERIAL PRIMARY KEY, url TEXT NOT NULL, body BYTEA NOT NULL, token TEXT NOT NULL, "
        "claimed_until BIGINT NOT NULL); COMMIT",
        {}, -1, "creating the table clutch_outbox");
  } catch (const std::exception& e) {
    throw ConfigError(e.what());
  }
}

PostgresOutbox::Result PostgresOutbox::run(const std::string& sql,
                                           const std::vector<std::string>& values, int binary_at,
                                           const char* doing, bool tuples, bool binary_results) {
  PGconn* conn = connection_();
  Result r(nullptr, ResultDeleter{&pq_});
  if (values.empty()) {
    r.reset(pq_.PQexec(conn, sql.c_str()));
  } else {
    std::vector<const char*> texts;
    std::vector<int> lengths, formats;
    for (std::size_t i = 0; i < values.size(); ++i) {
      texts.push_back(values[i].c_str());
      bool binary = static_cast<int>(i) == binary_at;
      lengths.push_back(binary ? static_cast<int>(values[i].size()) : 0);
      formats.push_back(binary ? 1 : 0);
    }
    r.reset(pq_.PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                             texts.data(), lengths.data(), formats.data(), binary_results ? 1 : 0));
  }
  ExecStatusType status = pq_.PQresultStatus(r.get());
  if (status == (tuples ? PGRES_TUPLES_OK : PGRES_COMMAND_OK)) return r;
  throw std::runtime_error(
      fmt::format("outbox: {}: {}", doing, pg_text(pq_.PQresultErrorMessage(r.get()))));
}

OutboxEntry PostgresOutbox::stage(const std::string& url, std::string_view body) {
  OutboxEntry e;
  std::string bytes(body);
  if (is_postgres_url(url)) {
    PostgresUrl target = parse_postgres_url(url);
    if (target.conninfo == conninfo_) {
      if (queue_tables_.insert(target.table).second) {
        try {
          PostgresSource make_table(target, kOutboxClaim);  // its own connection, once
        } catch (...) {
          queue_tables_.erase(target.table);
          throw;
        }
      }
      run(fmt::format("INSERT INTO {} (body) VALUES ($1)", target.table), {bytes}, 0,
          "publishing into a queue table of the same database");
      return e;  // id 0: in the queue already
    }
  }
  e.url = url;
  e.body = std::move(bytes);
  e.token = outbox_token();
  std::string until = std::to_string(outbox_now_ms() + kOutboxClaim.count() * 1000);
  Result r =
      run("INSERT INTO clutch_outbox (url, body, token, claimed_until) VALUES ($1, $2, $3, $4) "
          "RETURNING id",
          {url, e.body, e.token, until}, 1, "staging a message", true);
  e.id = std::stoll(pq_.PQgetvalue(r.get(), 0, 0));
  return e;
}

std::vector<OutboxEntry> PostgresOutbox::claim_stale(std::size_t max) {
  int64_t now = outbox_now_ms();
  Result r = run(
      "UPDATE clutch_outbox SET claimed_until = $1 WHERE id IN (SELECT id FROM clutch_outbox "
      "WHERE claimed_until < $2 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id, url, "
      "body, token",
      {std::to_string(now + kOutboxClaim.count() * 1000), std::to_string(now), std::to_string(max)},
      -1, "claiming", true, true);
  std::vector<OutboxEntry> out;
  for (int i = 0; i < pq_.PQntuples(r.get()); ++i) {
    OutboxEntry e;
    e.id = pg_int8(pq_, r.get(), i, 0);
    e.url = pg_bytes(pq_, r.get(), i, 1);
    e.body = pg_bytes(pq_, r.get(), i, 2);
    e.token = pg_bytes(pq_, r.get(), i, 3);
    out.push_back(std::move(e));
  }
  return out;
}

void PostgresOutbox::remove(int64_t id) {
  run("DELETE FROM clutch_outbox WHERE id = $1", {std::to_string(id)}, -1,
      "removing a relayed message");
}

}  // namespace clutch::mq
