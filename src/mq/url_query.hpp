// Small helpers for queue URLs (redis://, amqp://). Pure.
#pragma once

#include <string>
#include <string_view>

namespace clutch::mq {

// The value of `key` in "a=1&b=2", or "" when absent.
inline std::string query_value(std::string_view query, std::string_view key) {
  std::size_t at = 0;
  while (at < query.size()) {
    std::size_t end = query.find('&', at);
    std::string_view pair = query.substr(at, end == std::string_view::npos ? end : end - at);
    if (pair.substr(0, key.size()) == key && pair.size() > key.size() && pair[key.size()] == '=') {
      return std::string(pair.substr(key.size() + 1));
    }
    if (end == std::string_view::npos) break;
    at = end + 1;
  }
  return "";
}

// Decodes %XX escapes (a vhost "/" is written %2F); false for a malformed escape.
inline bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    int hi = i + 1 < in.size() ? hex(in[i + 1]) : -1;
    int lo = i + 2 < in.size() ? hex(in[i + 2]) : -1;
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

// The URL with its password (if any) as "***": redis://user:secret@host -> redis://user:***@host,
// for logs, status and error messages.
inline std::string redact_url(const std::string& url) {
  auto scheme = url.find("://");
  auto at = url.find('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
  auto colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

}  // namespace clutch::mq
