// The wire form of a response. Pure, apart from reading the clock for the Date header.
#pragma once

#include <ctime>
#include <string>
#include <string_view>

#include "clutch/http.hpp"

namespace clutch::http {

std::string_view reason_phrase(int status);

// The Date header's value, formatted at most once per second.
class DateCache {
 public:
  std::string_view now();

 private:
  std::time_t second_ = 0;
  std::string text_;
};

// Appends status line, the response's headers, Date, Content-Length and Connection, then the
// body (not for HEAD: its Content-Length is still the GET body's).
void write_response(std::string& out, const Response& response, bool head, bool keep_alive,
                    std::string_view date);

// A complete error response for the parser's limits (400, 408, 413, 431, ...), always closing.
std::string error_response(int status, std::string_view date);

}  // namespace clutch::http
