#include "http/response_writer.hpp"

#include <strings.h>

#include <charconv>

namespace clutch::http {

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string_view DateCache::now() {
  std::time_t t = std::time(nullptr);
  if (t != second_ || text_.empty()) {
    second_ = t;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::size_t n = std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    text_.assign(buf, n);
  }
  return text_;
}

namespace {
void append_number(std::string& out, std::size_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), n);
  out.append(buf, end);
}
}  // namespace

void write_response(std::string& out, const Response& r, bool head, bool keep_alive,
                    std::string_view date) {
  out += "HTTP/1.1 ";
  append_number(out, static_cast<std::size_t>(r.status));
  out += ' ';
  out += reason_phrase(r.status);
  out += "\r\n";
  for (const auto& [name, value] : r.headers) {
    // The server owns framing headers: a handler's own would contradict the real body.
    if (strcasecmp(name.c_str(), "content-length") == 0 ||
        strcasecmp(name.c_str(), "connection") == 0 ||
        strcasecmp(name.c_str(), "transfer-encoding") == 0 ||
        strcasecmp(name.c_str(), "date") == 0) {
      continue;
    }
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  out += "Date: ";
  out += date;
  out += "\r\nContent-Length: ";
  append_number(out, r.body.size());
  out += keep_alive ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
  if (!head) out += r.body;
}

std::string error_response(int status, std::string_view date) {
  Response r;
  r.status = status;
  r.body = std::string(reason_phrase(status)) + "\n";
  r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  std::string out;
  write_response(out, r, false, false, date);
  return out;
}

}  // namespace clutch::http
