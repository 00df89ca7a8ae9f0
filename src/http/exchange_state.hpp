// The shared state behind an Exchange handle: the request, the response being built, and the way
// back to the connection (gone if the client left).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "clutch/http.hpp"

namespace clutch::http {

class ExchangeState {
 public:
  Request request;
  Response response;
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<std::function<void(Response&)>> on_send;
  bool sent = false;
  // Writes the response on the connection; empty once the connection is closed.
  std::function<void(ExchangeState&)> deliver;
};

}  // namespace clutch::http
