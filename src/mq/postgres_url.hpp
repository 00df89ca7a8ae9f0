// A PostgreSQL queue's URL, postgres://USER:PASSWORD@HOST:PORT/DB?table=T: libpq's own URL, plus
// `table=` (the queue's table), which clutch takes out before libpq sees it (libpq rejects a query
// parameter it does not know). Pure.
#pragma once

#include <string>

namespace clutch::mq {

struct PostgresUrl {
  std::string conninfo;  // for libpq: the URL without table=
  std::string table;     // "clutch_queue" when the URL names none
};

// Throws ConfigError naming the URL (without its password) for another scheme, no database, or a
// table name that is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most 40 characters: the
// table's companions T_dead and T_consumers, and its notification channel, must fit PostgreSQL's
// 63).
PostgresUrl parse_postgres_url(const std::string& url);

bool is_postgres_url(const std::string& url);

}  // namespace clutch::mq
