#include "mq/postgres_url.hpp"

#include <fmt/format.h>

#include "clutch/config.hpp"
#include "mq/url_query.hpp"

namespace clutch::mq {
namespace {

constexpr std::size_t kMaxTableName = 40;

bool plain_identifier(const std::string& name) {
  if (name.empty() || name.size() > kMaxTableName) return false;
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!letter(name[0])) return false;
  for (char c : name)
    if (!letter(c) && !(c >= '0' && c <= '9')) return false;
  return true;
}

}  // namespace

bool is_postgres_url(const std::string& url) {
  return url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0;
}

PostgresUrl parse_postgres_url(const std::string& url) {
  auto fail = [&](const std::string& why) {
    return ConfigError(fmt::format(
        "mq: bad postgres URL '{}': {} (expected postgres://USER:PASSWORD@HOST:PORT/DB?table=T)",
        redact_url(url), why));
  };
  if (!is_postgres_url(url)) throw fail("not postgres:// or postgresql://");
  std::size_t authority = url.find("://") + 3;
  std::size_t slash = url.find('/', authority);
  std::size_t question = url.find('?', authority);
  if (slash == std::string::npos || (question != std::string::npos && question < slash) ||
      slash + 1 == (question == std::string::npos ? url.size() : question))
    throw fail("no database");
  PostgresUrl out;
  out.conninfo = url.substr(0, question);
  out.table = "clutch_queue";
  if (question == std::string::npos) return out;
  // Every parameter but table= goes on to libpq (sslmode=, application_name=, ...).
  std::string kept;
  std::string_view query = std::string_view(url).substr(question + 1);
  bool named = false;
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (pair.rfind("table=", 0) == 0) {
      out.table = std::string(pair.substr(6));
      named = true;
    } else if (!pair.empty()) {
      kept.append(kept.empty() ? "?" : "&").append(pair);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  if (named && !plain_identifier(out.table))
    throw fail(
        fmt::format("table '{}' is not a plain name ([A-Za-z_][A-Za-z0-9_]*, at most {} "
                    "characters)",
                    out.table, kMaxTableName));
  out.conninfo += kept;
  return out;
}

}  // namespace clutch::mq
