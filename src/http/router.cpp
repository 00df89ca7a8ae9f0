#include <strings.h>

#include "clutch/http.hpp"

namespace clutch::http {
namespace {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    std::size_t start = i;
    while (i < path.size() && path[i] != '/') ++i;
    if (i > start) out.emplace_back(path.substr(start, i - start));
  }
  return out;
}

}  // namespace

std::string_view Request::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), name.size()) == 0)
      return value;
  }
  return {};
}

void Response::set_header(std::string name, std::string value) {
  for (auto& [key, existing] : headers) {
    if (strcasecmp(key.c_str(), name.c_str()) == 0) {
      existing = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

Router& Router::add(std::string method, std::string pattern, Handler handler) {
  routes_.push_back(Route{std::move(method), split_path(pattern), std::move(handler)});
  return *this;
}

Router& Router::use(Middleware middleware) {
  middleware_.push_back(std::move(middleware));
  return *this;
}

Router::Match Router::match(std::string_view method, std::string_view path) const {
  Match result;
  // Views into `path`, in a buffer reused across requests (one loop thread per process).
  thread_local std::vector<std::string_view> segments;
  segments.clear();
  for (std::size_t i = 0; i < path.size();) {
    while (i < path.size() && path[i] == '/') ++i;
    std::size_t start = i;
    while (i < path.size() && path[i] != '/') ++i;
    if (i > start) segments.push_back(path.substr(start, i - start));
  }
  for (const Route& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    std::vector<std::pair<std::string, std::string>> params;
    bool same = true;
    for (std::size_t i = 0; i < segments.size() && same; ++i) {
      const std::string& want = route.segments[i];
      if (!want.empty() && want[0] == ':')
        params.emplace_back(want.substr(1), segments[i]);
      else
        same = want == segments[i];
    }
    if (!same) continue;
    // HEAD is served by the GET route (the body is dropped when written).
    bool method_ok = route.method == method || (method == "HEAD" && route.method == "GET");
    if (!method_ok) {
      if (result.status != 200) {
        result.status = 405;
        if (result.allow.find(route.method) == std::string::npos) {
          result.allow += (result.allow.empty() ? "" : ", ") + route.method;
        }
      }
      continue;
    }
    result.status = 200;
    result.handler = &route.handler;
    result.params = std::move(params);
    return result;
  }
  return result;
}

}  // namespace clutch::http
