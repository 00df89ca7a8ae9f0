// SQLite, loaded when the first sqlite: queue opens instead of at every process's exec: the
// master and the workers never open one, and linked at exec the library cost each of them
// ~250 KiB of mapped pages and 40 KiB of dirtied relocations (common/shared_library.hpp).
#pragma once

#include <sqlite3.h>

#include "common/shared_library.hpp"

// Every SQLite function clutch calls; each becomes a member of SqliteApi of the same name.
#define CLUTCH_SQLITE_FUNCTIONS(X) \
  X(sqlite3_bind_blob)             \
  X(sqlite3_bind_int)              \
  X(sqlite3_bind_int64)            \
  X(sqlite3_bind_text)             \
  X(sqlite3_busy_timeout)          \
  X(sqlite3_changes)               \
  X(sqlite3_clear_bindings)        \
  X(sqlite3_close)                 \
  X(sqlite3_column_blob)           \
  X(sqlite3_column_bytes)          \
  X(sqlite3_column_int)            \
  X(sqlite3_column_int64)          \
  X(sqlite3_column_text)           \
  X(sqlite3_errcode)               \
  X(sqlite3_errmsg)                \
  X(sqlite3_exec)                  \
  X(sqlite3_finalize)              \
  X(sqlite3_free)                  \
  X(sqlite3_get_autocommit)        \
  X(sqlite3_last_insert_rowid)     \
  X(sqlite3_open_v2)               \
  X(sqlite3_prepare_v2)            \
  X(sqlite3_reset)                 \
  X(sqlite3_step)

namespace clutch::mq {

CLUTCH_SHARED_LIBRARY(SqliteApi, CLUTCH_SQLITE_FUNCTIONS, sqlite_api)

// Resets a prepared statement and its bindings however the scope ends.
struct StatementReset {
  const SqliteApi& sql;
  sqlite3_stmt* stmt;
  ~StatementReset() {
    sql.sqlite3_reset(stmt);
    sql.sqlite3_clear_bindings(stmt);
  }
};

}  // namespace clutch::mq
