#include "master/metrics_server.hpp"

#include "master/listen_socket.hpp"
#include "master/proc_stats.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <strings.h>
#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

namespace clutch::master {
namespace {
constexpr std::size_t kMaxRequest = 8 * 1024;
constexpr int kMaxSessions = 64;
}  // namespace

// One scrape: reads the request head (8 KiB, 5 s at most), answers, closes.
class MetricsServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(asio::ip::tcp::socket socket, Pages& pages, std::shared_ptr<int> count)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        pages_(pages),
        count_(std::move(count)) {
    ++*count_;
  }
  ~Session() { --*count_; }

  void start() {
    timer_.expires_after(std::chrono::seconds(5));
    timer_.async_wait([weak = weak_from_this()](const asio::error_code& ec) {
      if (auto self = weak.lock(); self && !ec) self->socket_.close();
    });
    asio::async_read_until(socket_, input_, "\r\n\r\n",
                           [self = shared_from_this()](const asio::error_code& ec, std::size_t) {
                             if (ec) return self->finish();
                             self->answer();
                           });
  }

 private:
  void answer() {
    std::istream in(&input_);
    std::string method, target, line;
    in >> method >> target;
    Request request;
    request.method = method;
    auto q = target.find('?');
    request.path = target.substr(0, q);
    request.query = q == std::string::npos ? "" : target.substr(q + 1);
    while (std::getline(in, line)) {
      if (strncasecmp(line.c_str(), "X-Clutch-Action:", 16) == 0) request.action_header = true;
      auto value_of = [&](std::size_t name_length) {
        std::string v = line.substr(name_length);
        v.erase(0, v.find_first_not_of(" \t"));
        v.erase(v.find_last_not_of(" \t\r") + 1);
        return v;
      };
      if (strncasecmp(line.c_str(), "Host:", 5) == 0) request.host = value_of(5);
      if (strncasecmp(line.c_str(), "Origin:", 7) == 0) request.origin = value_of(7);
    }
    Page page;
    if (method == "POST") {
      request.peer_uid = loopback_peer_uid(socket_.native_handle());
      page = pages_(request);
    } else if (method != "GET" && method != "HEAD") {
      page = {405, "text/plain", "only GET (and POST for the dashboard's controls)\n"};
    } else {
      page = pages_(request);
    }
    std::string_view reason = page.status == 200   ? "OK"
                              : page.status == 202 ? "Accepted"
                              : page.status == 400 ? "Bad Request"
                              : page.status == 403 ? "Forbidden"
                              : page.status == 404 ? "Not Found"
                              : page.status == 405 ? "Method Not Allowed"
                              : page.status == 409 ? "Conflict"
                                                   : "Service Unavailable";
    out_ = fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n"
        "Connection: close\r\n\r\n",
        page.status, reason, page.content_type, page.body.size());
    if (method != "HEAD") out_ += page.body;
    asio::async_write(
        socket_, asio::buffer(out_),
        [self = shared_from_this()](const asio::error_code&, std::size_t) { self->finish(); });
  }

  void finish() {
    timer_.cancel();
    asio::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  Pages& pages_;
  std::shared_ptr<int> count_;
  asio::streambuf input_{kMaxRequest};
  std::string out_;
};

MetricsServer::MetricsServer(asio::io_context& io, Pages pages)
    : io_(io), pages_(std::move(pages)) {}

bool MetricsServer::open(const std::string& listen, std::string& error) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    error = fmt::format("metrics_listen '{}': expected HOST:PORT, e.g. 127.0.0.1:9464", listen);
    return false;
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  asio::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  int port = std::atoi(listen.c_str() + colon + 1);
  if (ec || port < 0 || port > 65535) {
    error = fmt::format("metrics_listen '{}': expected an IP address and a port", listen);
    return false;
  }
  auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(io_);
  asio::ip::tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(64, ec);
  if (ec) {
    error = fmt::format("metrics_listen {}: {}", listen, ec.message());
    return false;
  }
  // Asio does not open its sockets close-on-exec: the children must not inherit this one.
  ::fcntl(acceptor->native_handle(), F_SETFD, FD_CLOEXEC);
  acceptor_ = std::move(acceptor);
  accept();
  return true;
}

void MetricsServer::accept() {
  acceptor_->async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_) return;
    // Past the bound, a scraper that piles up connections is turned away, not followed.
    if (!ec && *open_sessions_ < kMaxSessions) {
      ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
      std::make_shared<Session>(std::move(socket), pages_, open_sessions_)->start();
    }
    accept();
  });
}

bool MetricsServer::adopt(int fd, std::string& error) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  asio::error_code ec;
  auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(io_);
  acceptor->assign(address.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd,
                   ec);
  if (ec) {
    error = ec.message();
    ::close(fd);
    return false;
  }
  acceptor_ = std::move(acceptor);
  accept();
  return true;
}

void MetricsServer::close() {
  if (!acceptor_) return;
  asio::error_code ignored;
  acceptor_->close(ignored);
  acceptor_.reset();
}

std::string MetricsServer::address() const {
  if (!acceptor_) return {};
  asio::error_code ec;
  auto endpoint = acceptor_->local_endpoint(ec);
  if (ec) return {};
  return endpoint.address().is_v6()
             ? fmt::format("[{}]:{}", endpoint.address().to_string(), endpoint.port())
             : endpoint_text(endpoint.address().to_string(), endpoint.port());
}

}  // namespace clutch::master
