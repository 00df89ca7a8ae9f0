// HTTP/1.1 in the workers: a router with parameters, Koa-style middleware, handlers that answer
// now or later, and a server on the listening socket the master bound (shared by every worker,
// woken one at a time).
//
//   clutch::http::Router router;
//   router.get("/orders/:id", [](clutch::http::Exchange ex) {
//     ex.send(200, "order " + std::string(ex.param("id")));
//   });
//   clutch::http::serve(ctx, std::move(router));   // in app.worker(...)
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clutch/context.hpp"

namespace clutch::http {

struct Request {
  std::string method;  // "GET"
  std::string target;  // "/orders/7?full=1"
  std::string path;    // "/orders/7"
  std::string query;   // "full=1"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The first header of that name (case-insensitive), or "".
  std::string_view header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>>
      headers;  // Date, Content-Length, Connection are added
  std::string body;
  void set_header(std::string name, std::string value);
};

class ExchangeState;

// One request and its response. Copyable handle: keep a copy to answer later (after a messenger
// request or other I/O); answering after the client went away does nothing.
class Exchange {
 public:
  explicit Exchange(std::shared_ptr<ExchangeState> state) : state_(std::move(state)) {}
  const Request& request() const;
  Response& response();
  // A route parameter (":id" in "/orders/:id"), or "".
  std::string_view param(std::string_view name) const;
  // Sends response() as it is now. Only the first call counts.
  void send();
  void send(int status, std::string body, std::string content_type = "text/plain; charset=utf-8");
  // Sends `json_text` as application/json.
  void send_json(int status, std::string json_text);
  bool sent() const;
  // Runs just before the response is written (middleware's "after" half for async handlers).
  void on_send(std::function<void(Response&)> fn);

 private:
  std::shared_ptr<ExchangeState> state_;
};

using Handler = std::function<void(Exchange)>;
// Koa-style: code before next() runs on the way in; on_send() hooks run on the way out.
using Middleware = std::function<void(Exchange, const std::function<void()>& next)>;

class Router {
 public:
  Router& get(std::string pattern, Handler handler) {
    return add("GET", std::move(pattern), std::move(handler));
  }
  Router& post(std::string pattern, Handler handler) {
    return add("POST", std::move(pattern), std::move(handler));
  }
  Router& put(std::string pattern, Handler handler) {
    return add("PUT", std::move(pattern), std::move(handler));
  }
  Router& del(std::string pattern, Handler handler) {
    return add("DELETE", std::move(pattern), std::move(handler));
  }
  Router& add(std::string method, std::string pattern, Handler handler);
  Router& use(Middleware middleware);

  // Routing result; pure, for tests and the server.
  struct Match {
    int status = 404;  // 200 found, 404 no path, 405 path but not this method
    const Handler* handler = nullptr;
    std::vector<std::pair<std::string, std::string>> params;
    std::string allow;  // for 405
  };
  Match match(std::string_view method, std::string_view path) const;
  const std::vector<Middleware>& middleware() const { return middleware_; }

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;  // ":name" segments capture
    Handler handler;
  };
  std::vector<Route> routes_;
  std::vector<Middleware> middleware_;
};

// Limits and timeouts of the HTTP server. serve(ctx, router) takes them from the cluster's
// config (the http_* keys, see docs/OPERATIONS.md); these defaults are the keys' defaults.
struct ServerOptions {
  std::size_t max_header_bytes = 16 * 1024;       // larger header block: 431
  std::size_t max_body_bytes = 8 * 1024 * 1024;   // larger body: 413
  std::chrono::milliseconds read_timeout{10000};  // request not complete in time: 408
  std::chrono::milliseconds idle_timeout{60000};  // idle keep-alive connection closed
  // A handler that has not answered in time: the client gets handler_timeout_status and the
  // connection closes (a late answer is dropped). 0: no limit.
  std::chrono::milliseconds handler_timeout{60000};
  int handler_timeout_status = 503;
  // A response the client does not read in time: the connection closes.
  std::chrono::milliseconds write_timeout{60000};
  std::chrono::milliseconds drain_timeout{
      10000};  // graceful stop gives in-flight requests this long
  // Per worker; beyond it the worker stops accepting (others take the connections). 0: derived
  // from the open-file limit (the soft RLIMIT_NOFILE less 64 for the process's own files, up to
  // 10,000), so a worker never runs out of descriptors from connections alone.
  std::size_t max_connections = 0;
  // Load shedding (config http_max_queue_time, http_max_in_flight): 503 with Retry-After at
  // once, the handler not run. 0: off.
  std::chrono::milliseconds max_queue_time{0};
  std::size_t max_in_flight = 0;

  // The options the cluster's config sets (http_read_timeout, http_max_body_size, ...).
  static ServerOptions from_config(const Config& config);
};

// Serves `router` on the cluster's listening socket from this worker until it stops; on a
// graceful stop, stops accepting, finishes in-flight requests and closes idle connections.
// Without options, they come from the config (ServerOptions::from_config).
void serve(Context& ctx, Router router);
void serve(Context& ctx, Router router, ServerOptions options);

}  // namespace clutch::http
