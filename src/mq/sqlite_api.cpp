#include "mq/sqlite_api.hpp"

namespace clutch::mq {
namespace {

const SharedLibrary kSqlite{CLUTCH_SQLITE_SONAME, "CLUTCH_SQLITE_LIBRARY",
                            "the sqlite: queue needs SQLite", "Debian package libsqlite3-0",
                            "sqlite"};

}  // namespace

CLUTCH_SHARED_LIBRARY_LOADER(SqliteApi, CLUTCH_SQLITE_FUNCTIONS, sqlite_api, kSqlite)

}  // namespace clutch::mq
