// One client connection: reads, parses with llhttp, enforces the limits, hands each request to
// the router, writes responses in request order (pipelined requests wait their turn), and
// honours keep-alive, idle and read timeouts and the graceful drain.
#pragma once

#include <llhttp.h>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <string>

#include "clutch/http.hpp"
#include "http/exchange_state.hpp"
#include "http/figures.hpp"
#include "http/response_writer.hpp"

namespace clutch::http {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& io, int fd, const Router& router, const ServerOptions& options,
             DateCache& dates, HttpFigures& figures, std::function<void(Connection*)> on_closed);
  ~Connection();
  void start();
  // Graceful stop: an idle connection closes now; a busy one after its current response, which
  // carries "Connection: close".
  void drain();
  void close();
  // Applies the read or idle timeout if it has passed (called by the server's periodic sweep).
  void check_deadline(std::chrono::steady_clock::time_point now);

 private:
  // One request's way through the middleware to its handler.
  struct Onion : std::enable_shared_from_this<Onion> {
    Onion(const std::vector<Middleware>& c, const Handler& h, Exchange e)
        : chain(c), handler(h), exchange(std::move(e)) {}
    void run(std::size_t i);
    const std::vector<Middleware>& chain;  // the router's: lives as long as the server
    const Handler& handler;
    Exchange exchange;
  };
  static int on_message_begin(llhttp_t* p);
  static int on_method(llhttp_t* p, const char* at, std::size_t n);
  static int on_url(llhttp_t* p, const char* at, std::size_t n);
  static int on_header_field(llhttp_t* p, const char* at, std::size_t n);
  static int on_header_value(llhttp_t* p, const char* at, std::size_t n);
  static int on_header_value_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, std::size_t n);
  static int on_message_complete(llhttp_t* p);
  static const llhttp_settings_t& settings();

  void read_more();
  void parse();
  void dispatch();
  void deliver(ExchangeState& exchange);
  void fail(int status);
  // Load shedding: true if the request was answered 503 at once (the handler is not run).
  bool shed(Exchange& exchange, std::chrono::steady_clock::time_point began);
  void settle_in_flight();
  // What an expired deadline means.
  enum class Deadline {
    kRead,     // the request is not complete: 408 if it began, else close
    kIdle,     // keep-alive with no request: close
    kHandler,  // the handler has not answered: handler_timeout_status, close
    kWrite,    // the client does not read the response: close
  };
  void arm_timer(std::chrono::milliseconds after, Deadline kind);
  void handler_timed_out();
  // Checks nginx makes before a request reaches a handler; the status to answer, or 0.
  int refuse_request(llhttp_t* p) const;
  bool count_header_bytes(std::size_t n);

  asio::ip::tcp::socket socket_;
  const Router& router_;
  const ServerOptions& options_;
  DateCache& dates_;
  HttpFigures& figures_;
  std::chrono::steady_clock::time_point dispatched_at_{};  // of the request being handled
  // Where a request's wait began, without X-Request-Start: the connection's accept for its
  // first request, the request's first byte for later ones.
  std::chrono::steady_clock::time_point accepted_at_{}, request_began_{};
  bool first_request_ = true;
  bool in_flight_counted_ = false;  // the request being handled counts in figures_.in_flight
  std::function<void(Connection*)> on_closed_;
  std::chrono::steady_clock::time_point deadline_{};
  Deadline deadline_kind_ = Deadline::kRead;
  bool deadline_armed_ = false;
  llhttp_t parser_;
  std::unique_ptr<char[]> read_buffer_;  // what one read returns; appended to in_
  std::string in_;                       // received, not yet parsed
  std::size_t parsed_ = 0;
  const char* exec_start_ = nullptr;  // the start of what llhttp is parsing now
  std::string out_;
  std::shared_ptr<ExchangeState> current_;  // the request being parsed or handled
  std::string header_field_, header_value_;
  bool in_header_value_ = false;
  std::size_t header_bytes_ = 0;
  int limit_status_ = 0;          // set by a callback that hit a limit
  bool busy_ = false;             // a request is with the handler; parsing waits
  bool request_started_ = false;  // bytes of a request arrived and its response is not out yet
  bool keep_alive_ = true, draining_ = false, closed_ = false, reading_ = false, head_ = false;
};

}  // namespace clutch::http
