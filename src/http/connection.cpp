#include "http/connection.hpp"

#include <spdlog/spdlog.h>
#include <strings.h>
#include <sys/socket.h>
#include <asio/write.hpp>

#include <cctype>
#include <string_view>

#include "http/queue_time.hpp"

namespace clutch::http {
namespace {
constexpr std::size_t kReadSize = 16 * 1024;
Connection* self_of(llhttp_t* p) {
  return static_cast<Connection*>(p->data);
}
}  // namespace

const llhttp_settings_t& Connection::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t x;
    llhttp_settings_init(&x);
    x.on_message_begin = on_message_begin;
    x.on_method = on_method;
    x.on_url = on_url;
    x.on_header_field = on_header_field;
    x.on_header_value = on_header_value;
    x.on_header_value_complete = on_header_value_complete;
    x.on_headers_complete = on_headers_complete;
    x.on_body = on_body;
    x.on_message_complete = on_message_complete;
    return x;
  }();
  return s;
}

Connection::Connection(asio::io_context& io, int fd, const Router& router,
                       const ServerOptions& options, DateCache& dates, HttpFigures& figures,
                       std::function<void(Connection*)> on_closed)
    : socket_(io),
      router_(router),
      options_(options),
      dates_(dates),
      figures_(figures),
      on_closed_(std::move(on_closed)) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  socket_.assign(address.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd);
  // A UNIX socket (listen on unix:PATH) is served the same way; only TCP has Nagle to turn off.
  if (address.ss_family != AF_UNIX) socket_.set_option(asio::ip::tcp::no_delay(true));
  llhttp_init(&parser_, HTTP_REQUEST, &settings());
  parser_.data = this;
}

Connection::~Connection() {
  llhttp_finish(&parser_);
}

void Connection::start() {
  accepted_at_ = std::chrono::steady_clock::now();
  arm_timer(options_.read_timeout, Deadline::kRead);
  read_more();
}

void Connection::arm_timer(std::chrono::milliseconds after, Deadline kind) {
  // Only a deadline is recorded here; the server's sweep checks it. Re-arming an Asio timer for
  // every request cost a timerfd syscall and a cancelled-handler dispatch per request.
  deadline_ = std::chrono::steady_clock::now() + after;
  deadline_kind_ = kind;
  deadline_armed_ = after.count() > 0;
}

void Connection::check_deadline(std::chrono::steady_clock::time_point now) {
  if (!deadline_armed_ || closed_ || now < deadline_) return;
  deadline_armed_ = false;
  switch (deadline_kind_) {
    case Deadline::kRead:
      // A request begun but not finished in time gets 408 (slowloris); an idle one just closes.
      if (request_started_ && !busy_) return fail(408);
      return close();
    case Deadline::kIdle:
      return close();
    case Deadline::kWrite: {
      // A client that does not read: reset rather than close, or the kernel would go on
      // trickling the megabytes already in the send buffer to it.
      linger abort{1, 0};
      setsockopt(socket_.native_handle(), SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
      spdlog::debug("http: a client read no response for {} ms: connection reset",
                    options_.write_timeout.count());
      return close();
    }
    case Deadline::kHandler:
      return handler_timed_out();
  }
}

void Connection::handler_timed_out() {
  if (current_) {
    spdlog::warn("http: {} {}: the handler did not answer within {} ms: {}",
                 current_->request.method, current_->request.path, options_.handler_timeout.count(),
                 options_.handler_timeout_status);
    // Its answer, should it come, goes nowhere: the client already has this one.
    current_->sent = true;
    current_->deliver = nullptr;
    current_.reset();
    settle_in_flight();
  }
  fail(options_.handler_timeout_status);
}

void Connection::read_more() {
  if (reading_ || closed_ || busy_) return;
  reading_ = true;
  // Read into a separate buffer: growing in_ by 16 KiB per read would zero it every time.
  if (!read_buffer_) read_buffer_.reset(new char[kReadSize]);
  socket_.async_read_some(asio::buffer(read_buffer_.get(), kReadSize),
                          [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
                            self->reading_ = false;
                            if (self->closed_) return;
                            if (ec) return self->close();
                            self->in_.append(self->read_buffer_.get(), n);
                            self->parse();
                          });
}

void Connection::parse() {
  while (!closed_ && !busy_ && parsed_ < in_.size()) {
    const char* start = in_.data() + parsed_;
    exec_start_ = start;
    llhttp_errno_t err = llhttp_execute(&parser_, start, in_.size() - parsed_);
    if (err == HPE_OK) {
      parsed_ = in_.size();
      break;
    }
    if (err == HPE_PAUSED) {
      // A whole request: the bytes after it wait in in_ until its response is out.
      parsed_ += static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - start);
      llhttp_resume(&parser_);
      dispatch();
      continue;
    }
    if (err == HPE_PAUSED_UPGRADE) {
      // The request asked for another protocol (WebSocket, h2c) and was answered as plain
      // HTTP, which declines the upgrade (RFC 9110 7.8): the connection goes on as HTTP/1.1.
      parsed_ += static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - start);
      llhttp_resume_after_upgrade(&parser_);
      continue;
    }
    if (limit_status_ != 0) return fail(limit_status_);
    spdlog::debug("http: malformed request: {} ({})", llhttp_errno_name(err),
                  llhttp_get_error_reason(&parser_));
    return fail(err == HPE_INVALID_VERSION ? 505 : 400);
  }
  if (parsed_ == in_.size()) {
    in_.clear();
    parsed_ = 0;
  }
  if (!busy_) read_more();
}

bool Connection::count_header_bytes(std::size_t n) {
  header_bytes_ += n;
  if (header_bytes_ <= options_.max_header_bytes) return true;
  limit_status_ = 431;
  return false;
}

int Connection::on_message_begin(llhttp_t* p) {
  Connection* c = self_of(p);
  c->current_ = std::make_shared<ExchangeState>();
  c->request_started_ = true;
  c->request_began_ = c->first_request_ ? c->accepted_at_ : std::chrono::steady_clock::now();
  c->first_request_ = false;
  c->header_bytes_ = 0;
  c->header_field_.clear();
  c->header_value_.clear();
  c->in_header_value_ = false;
  c->arm_timer(c->options_.read_timeout, Deadline::kRead);
  return 0;
}

int Connection::on_method(llhttp_t* p, const char* at, std::size_t n) {
  Connection* c = self_of(p);
  c->current_->request.method.append(at, n);
  return c->count_header_bytes(n) ? 0 : -1;
}

int Connection::on_url(llhttp_t* p, const char* at, std::size_t n) {
  Connection* c = self_of(p);
  c->current_->request.target.append(at, n);
  return c->count_header_bytes(n) ? 0 : -1;
}

namespace {
// RFC 9110 token characters: what a header name may be made of (no space, no separators).
bool is_token_char(unsigned char ch) {
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return std::isalnum(ch) != 0 || kExtra.find(static_cast<char>(ch)) != std::string_view::npos;
}
// A header value may hold visible characters, spaces and tabs: no NUL, CR, LF (injection,
// obs-fold) or other controls.
bool is_value_char(unsigned char ch) {
  return ch == '\t' || (ch >= 0x20 && ch != 0x7F);
}
}  // namespace

int Connection::on_header_field(llhttp_t* p, const char* at, std::size_t n) {
  Connection* c = self_of(p);
  for (std::size_t i = 0; i < n; ++i) {
    if (!is_token_char(static_cast<unsigned char>(at[i]))) {
      c->limit_status_ = 400;
      return -1;
    }
  }
  c->header_field_.append(at, n);
  return c->count_header_bytes(n) ? 0 : -1;
}

int Connection::on_header_value(llhttp_t* p, const char* at, std::size_t n) {
  Connection* c = self_of(p);
  // llhttp joins an obs-fold (a value continued on a line starting with a space) silently; RFC
  // 9112 5.2 lets a server reject it, and nginx does: a line break right before this span.
  const char* back = at;
  while (back > c->exec_start_ && (back[-1] == ' ' || back[-1] == '\t')) --back;
  if (back > c->exec_start_ && back[-1] == '\n') {
    c->limit_status_ = 400;
    return -1;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!is_value_char(static_cast<unsigned char>(at[i]))) {
      c->limit_status_ = 400;
      return -1;
    }
  }
  c->header_value_.append(at, n);
  return c->count_header_bytes(n) ? 0 : -1;
}

int Connection::on_header_value_complete(llhttp_t* p) {
  Connection* c = self_of(p);
  c->current_->request.headers.emplace_back(std::move(c->header_field_),
                                            std::move(c->header_value_));
  c->header_field_.clear();
  c->header_value_.clear();
  return 0;
}

int Connection::refuse_request(llhttp_t* p) const {
  const Request& r = current_->request;
  if (p->http_major != 1) return 505;  // HTTP/2.0 in an HTTP/1 request line: not this protocol
  std::size_t hosts = 0;
  for (const auto& [name, value] : r.headers) {
    if (name.size() == 4 && strncasecmp(name.data(), "host", 4) == 0) ++hosts;
  }
  // RFC 9112 3.2: a 1.1 request has exactly one Host; a 1.0 one at most one.
  if (hosts > 1 || (hosts == 0 && p->http_minor >= 1)) return 400;
  // Asterisk-form (OPTIONS *) and CONNECT's authority-form address the server or a tunnel, which
  // this server does not offer; nginx answers 400 as well.
  if (r.target == "*" || p->method == HTTP_CONNECT) return 400;
  if ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > options_.max_body_bytes) return 413;
  return 0;
}

int Connection::on_headers_complete(llhttp_t* p) {
  Connection* c = self_of(p);
  Request& r = c->current_->request;
  if (int status = c->refuse_request(p); status != 0) {
    c->limit_status_ = status;
    return -1;
  }
  std::string_view expect = r.header("expect");
  if (expect.size() == 12 && strncasecmp(expect.data(), "100-continue", 12) == 0) {
    // The client waits for this before sending the body. Never blocking: on a fresh connection
    // 25 bytes always fit the socket buffer; if they do not, the client is not reading at all.
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    ssize_t n = ::send(c->socket_.native_handle(), kContinue.data(), kContinue.size(),
                       MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n != static_cast<ssize_t>(kContinue.size())) {
      c->limit_status_ = 400;
      return -1;
    }
  }
  return 0;
}

int Connection::on_body(llhttp_t* p, const char* at, std::size_t n) {
  Connection* c = self_of(p);
  std::string& body = c->current_->request.body;
  if (body.size() + n > c->options_.max_body_bytes) {
    c->limit_status_ = 413;
    return -1;
  }
  body.append(at, n);
  return 0;
}

int Connection::on_message_complete(llhttp_t* p) {
  Connection* c = self_of(p);
  c->keep_alive_ = llhttp_should_keep_alive(p) != 0;
  return HPE_PAUSED;
}

void Connection::dispatch() {
  busy_ = true;
  arm_timer(options_.handler_timeout, Deadline::kHandler);
  dispatched_at_ = std::chrono::steady_clock::now();
  auto state = current_;
  Request& r = state->request;
  std::string_view target = r.target;
  // Absolute-form (GET http://host/path, as sent to proxies): routed by its path, as nginx does.
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() > scheme.size() &&
        strncasecmp(target.data(), scheme.data(), scheme.size()) == 0) {
      auto slash = target.find('/', scheme.size());
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      break;
    }
  }
  auto q = target.find('?');
  r.path = std::string(target.substr(0, q));
  r.query = q == std::string_view::npos ? "" : std::string(target.substr(q + 1));
  head_ = r.method == "HEAD";
  std::weak_ptr<Connection> weak = weak_from_this();
  state->deliver = [weak](ExchangeState& s) {
    if (auto c = weak.lock()) c->deliver(s);
  };
  Exchange exchange(state);
  if (shed(exchange, request_began_)) return;
  Router::Match match = router_.match(r.method, r.path);
  if (match.status == 404) return exchange.send(404, "Not Found\n");
  if (match.status == 405) {
    exchange.response().set_header("Allow", match.allow);
    return exchange.send(405, "Method Not Allowed\n");
  }
  state->params = std::move(match.params);
  const Handler& handler = *match.handler;
  const auto& chain = router_.middleware();
  // The onion: middleware i calls next() to run i+1, the last next() runs the handler. Without
  // middleware the handler is called directly (no std::function on the request path). next()
  // owns what it needs, so a middleware may call it later (after its own I/O, from a timer).
  try {
    if (chain.empty())
      handler(exchange);
    else
      std::make_shared<Onion>(chain, handler, exchange)->run(0);
  } catch (const std::exception& e) {
    spdlog::error("http: {} {}: handler threw: {}", r.method, r.path, e.what());
    if (!exchange.sent()) exchange.send(500, "Internal Server Error\n");
  }
}

bool Connection::shed(Exchange& exchange, std::chrono::steady_clock::time_point began) {
  auto waited = std::chrono::duration_cast<std::chrono::microseconds>(dispatched_at_ - began);
  if (auto said = exchange.request().header("X-Request-Start"); !said.empty()) {
    if (auto age = queue_age_from_header(said, std::chrono::system_clock::now())) waited = *age;
  }
  figures_.queue->observe(static_cast<double>(waited.count()) / 1e6);
  int reason = -1;
  if (options_.max_queue_time.count() > 0 && waited > options_.max_queue_time) reason = 0;
  if (reason < 0 && options_.max_in_flight > 0 && figures_.in_flight >= options_.max_in_flight)
    reason = 1;
  if (reason < 0) {
    ++figures_.in_flight;
    in_flight_counted_ = true;
    return false;
  }
  figures_.shed[static_cast<std::size_t>(reason)]->inc();
  // At once and cheaply, so that the client (or its balancer) goes elsewhere or comes back,
  // rather than waiting in a queue until it times out.
  exchange.response().set_header("Retry-After", "1");
  exchange.send(503, "Service Unavailable: overloaded, retry shortly\n");
  return true;
}

void Connection::settle_in_flight() {
  if (!in_flight_counted_) return;
  in_flight_counted_ = false;
  --figures_.in_flight;
}

void Connection::Onion::run(std::size_t i) {
  if (i == chain.size()) return handler(exchange);
  chain[i](exchange, [self = shared_from_this(), i] { self->run(i + 1); });
}

void Connection::deliver(ExchangeState& exchange) {
  if (closed_) return;
  if (draining_) keep_alive_ = false;
  settle_in_flight();
  out_.clear();
  write_response(out_, exchange.response, head_, keep_alive_, dates_.now());
  figures_.responded(exchange.response.status, dispatched_at_);
  current_.reset();
  arm_timer(options_.write_timeout, Deadline::kWrite);
  asio::async_write(socket_, asio::buffer(out_),
                    [self = shared_from_this()](const asio::error_code& ec, std::size_t) {
                      if (self->closed_) return;
                      if (ec || !self->keep_alive_) return self->close();
                      self->busy_ = false;
                      self->request_started_ = false;
                      self->header_bytes_ = 0;
                      self->arm_timer(self->options_.idle_timeout, Deadline::kIdle);
                      self->parse();  // pipelined requests already buffered, or read the next one
                    });
}

void Connection::fail(int status) {
  if (closed_) return;
  busy_ = true;  // nothing more is parsed on this connection
  out_ = error_response(status, dates_.now());
  figures_.responded(status);
  arm_timer(options_.write_timeout, Deadline::kWrite);
  asio::async_write(
      socket_, asio::buffer(out_),
      [self = shared_from_this()](const asio::error_code&, std::size_t) { self->close(); });
}

void Connection::drain() {
  draining_ = true;
  if (busy_ || request_started_) return;  // closes after this response ("Connection: close")
  // Idle keep-alive: a request may already be on its way, and closing under it is what makes
  // clients see errors during reloads. Give it a moment: a request that comes is answered with
  // "Connection: close"; a connection that stays silent is closed.
  arm_timer(std::min(options_.idle_timeout, std::chrono::milliseconds(1000)), Deadline::kIdle);
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  settle_in_flight();
  deadline_armed_ = false;
  asio::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  if (on_closed_) on_closed_(this);
}

}  // namespace clutch::http
