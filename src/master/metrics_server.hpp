// The master's metrics listener (config metrics_listen, off by default): GET /metrics in the
// Prometheus text format, /healthz (the master lives) and /readyz (the cluster is ready and not
// degraded), for scrapers, Kubernetes probes and load balancers. A minimal HTTP/1.x responder:
// one bounded request per connection, answered and closed, a bounded number of connections at
// once; it never blocks the master's loop.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <functional>
#include <memory>
#include <string>

namespace clutch::master {

class MetricsServer {
 public:
  struct Page {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
  };
  struct Request {
    std::string method, path, query;
    bool action_header = false;  // X-Clutch-Action present: not a cross-site form post
    std::string host, origin;    // the Host and Origin headers, "" when absent
    long peer_uid = -1;          // POST only: the loopback client's uid, -1 if not known
  };
  // Builds the answer for a request ("/metrics", "/healthz", ...).
  using Pages = std::function<Page(const Request& request)>;

  MetricsServer(asio::io_context& io, Pages pages);
  // Binds "HOST:PORT" (port 0: any free port); false with the reason in `error`.
  bool open(const std::string& listen, std::string& error);
  void close();
  // Serves on a listening socket handed over by an earlier master.
  bool adopt(int fd, std::string& error);
  int fd() const { return acceptor_ ? acceptor_->native_handle() : -1; }
  // "HOST:PORT" actually bound, empty when closed.
  std::string address() const;

 private:
  class Session;
  void accept();

  asio::io_context& io_;
  Pages pages_;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  std::shared_ptr<int> open_sessions_ = std::make_shared<int>(0);
};

}  // namespace clutch::master
