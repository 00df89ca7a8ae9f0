#include "mq/postgres_connection.hpp"

#include <spdlog/spdlog.h>

#include <endian.h>

#include <cstring>
#include <stdexcept>
#include <string_view>

namespace clutch::mq {

std::string pg_text(const char* message) {
  std::string s = message != nullptr ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

PGconn* pg_connect(const LibpqApi& pq, const std::string& conninfo, int timeout_seconds) {
  // connect_timeout first: the URL's own comes later and wins (expand_dbname).
  std::string timeout = std::to_string(timeout_seconds);
  const char* keys[] = {"connect_timeout", "dbname", "application_name", nullptr};
  const char* values[] = {timeout.c_str(), conninfo.c_str(), "clutch", nullptr};
  PGconn* conn = pq.PQconnectdbParams(keys, values, 1);
  if (conn != nullptr && pq.PQstatus(conn) == CONNECTION_OK) {
    // The server's notices ("relation ... already exists, skipping") go to the debug log, not to
    // stderr as libpq's default would print them.
    pq.PQsetNoticeProcessor(
        conn, [](void*, const char* message) { spdlog::debug("postgres: {}", pg_text(message)); },
        nullptr);
    return conn;
  }
  std::string why = conn != nullptr ? pg_text(pq.PQerrorMessage(conn)) : "out of memory";
  if (conn != nullptr) pq.PQfinish(conn);
  throw std::runtime_error(why);
}

bool pg_refused_for_good(const std::string& why) {
  // The server's FATAL messages for these (SQLSTATE 3D000, 28000, 28P01): libpq reports no
  // SQLSTATE for a failed connection, only the text.
  for (std::string_view sign : {"does not exist", "authentication failed", "no pg_hba.conf entry",
                                "password authentication", "invalid URI", "invalid connection"})
    if (why.find(sign) != std::string::npos) return true;
  return false;
}

int64_t pg_int8(const LibpqApi& pq, PGresult* r, int row, int column) {
  uint64_t be = 0;
  std::memcpy(&be, pq.PQgetvalue(r, row, column), sizeof be);
  return static_cast<int64_t>(be64toh(be));
}

int32_t pg_int4(const LibpqApi& pq, PGresult* r, int row, int column) {
  uint32_t be = 0;
  std::memcpy(&be, pq.PQgetvalue(r, row, column), sizeof be);
  return static_cast<int32_t>(be32toh(be));
}

std::string pg_bytes(const LibpqApi& pq, PGresult* r, int row, int column) {
  return std::string(pq.PQgetvalue(r, row, column),
                     static_cast<std::size_t>(pq.PQgetlength(r, row, column)));
}

}  // namespace clutch::mq
