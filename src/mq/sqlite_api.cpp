#include "mq/sqlite_api.hpp"

namespace clutch::mq {
namespace {

const SharedLibrary kSqlite{CLUTCH_SQLITE_SONAME, "CLUTCH_SQLITE_LIBRARY",
                            "the sqlite: queue needs SQLite", "Debian package libsqlite3-0",
                            "sqlite"};

CLUTCH_LIBRARY_LOADER(SqliteApi, CLUTCH_SQLITE_FUNCTIONS, kSqlite)

}  // namespace

const SqliteApi& sqlite_api() {
  return load_once<SqliteApi, load_SqliteApi>();
}

}  // namespace clutch::mq
