// The outbox's table on a PostgreSQL inbox (mq/outbox.hpp), on the inbox's own connection.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>

#include "mq/outbox.hpp"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace clutch::mq {

struct LibpqApi;

class PostgresOutbox final : public OutboxStore {
 public:
  // `connection` gives the inbox's connection (made again if it broke); `conninfo` is the
  // inbox's database, for recognising a queue table in it. Creates clutch_outbox if missing.
  PostgresOutbox(std::function<PGconn*()> connection, std::string conninfo);

  // A postgres:// queue in the inbox's own database gets its row in the transaction (an entry
  // with id 0: nothing to relay).
  OutboxEntry stage(const std::string& url, std::string_view body) override;
  std::vector<OutboxEntry> claim_stale(std::size_t max) override;
  void remove(int64_t id) override;

 private:
  // Runs `sql` with text parameters, except `binary_at` (0-based), sent as bytes; the results in
  // binary when `binary_results` (read with pg_int8, pg_bytes).
  struct ResultDeleter {
    const LibpqApi* pq;
    void operator()(PGresult* r) const;
  };
  using Result = std::unique_ptr<PGresult, ResultDeleter>;
  Result run(const std::string& sql, const std::vector<std::string>& values, int binary_at,
             const char* doing, bool tuples = false, bool binary_results = false);

  const LibpqApi& pq_;
  std::function<PGconn*()> connection_;
  std::string conninfo_;
  std::set<std::string> queue_tables_;  // queue tables in this database known to exist
};

}  // namespace clutch::mq
