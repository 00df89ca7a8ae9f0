// What the PostgreSQL inbox and queue share about connecting through libpq.
#pragma once

#include <cstdint>
#include <string>

#include "mq/libpq_api.hpp"

namespace clutch::mq {

// libpq's message without its trailing newline (or "" for none).
std::string pg_text(const char* message);

// Connects to `conninfo` (a URL or key=value string; its own connect_timeout wins over
// `timeout_seconds`), as application "clutch". Throws std::runtime_error with libpq's reason.
PGconn* pg_connect(const LibpqApi& pq, const std::string& conninfo, int timeout_seconds);

// Whether a connection failed because the server turned it away for good (no such database or
// role, a wrong password, no pg_hba.conf entry): a configuration error, not an outage to wait out.
bool pg_refused_for_good(const std::string& why);

// Fields of a result asked for in binary (resultFormat 1): bigint, integer, and bytea or text.
int64_t pg_int8(const LibpqApi& pq, PGresult* r, int row, int column);
int32_t pg_int4(const LibpqApi& pq, PGresult* r, int row, int column);
std::string pg_bytes(const LibpqApi& pq, PGresult* r, int row, int column);

}  // namespace clutch::mq
