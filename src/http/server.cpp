// The worker's HTTP server: accepts on the shared listening socket through a private epoll set
// registered with EPOLLEXCLUSIVE (one worker woken per connection, as nginx does), owns the
// connections, and drains them on a graceful stop.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "clutch/asio.hpp"
#include "clutch/http.hpp"
#include "http/connection.hpp"

namespace clutch::http {
namespace {

// Two descriptors held in reserve for the moment the process has none left (EMFILE): released
// while the worker reports it, so that the report itself can open what it needs.
class SpareDescriptors {
 public:
  SpareDescriptors() { take(); }
  ~SpareDescriptors() { release(); }
  void take() {
    for (int& fd : fds_)
      if (fd < 0) fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  void release() {
    for (int& fd : fds_) {
      if (fd >= 0) close(fd);
      fd = -1;
    }
  }

 private:
  int fds_[2] = {-1, -1};
};

class Server : public std::enable_shared_from_this<Server> {
 public:
  Server(Context& ctx, Router router, ServerOptions options)
      : ctx_(ctx),
        io_(clutch::io_context(ctx)),
        router_(std::move(router)),
        options_(options),
        wakeups_(io_),
        drain_timer_(io_),
        sweep_timer_(io_),
        figures_(ctx.metrics(), ctx.config().http_duration_buckets_us),
        fd_backoff_timer_(io_) {
    if (options_.max_connections == 0) options_.max_connections = default_max_connections();
  }

  void start() {
    if (ctx_.listen_fd() < 0)
      throw std::runtime_error("http::serve: no listening socket (call it in a worker)");
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, ctx_.listen_fd(), &ev) != 0) {
      throw std::runtime_error(std::string("http::serve: epoll: ") + strerror(errno));
    }
    wakeups_.assign(epfd);
    auto self = shared_from_this();
    ctx_.on_stop([self](std::function<void()> done) { self->drain(std::move(done)); });
    wait_for_connections();
    sweep();
  }

 private:
  // One timer for all connections' read and idle timeouts, 4 times a second.
  void sweep() {
    sweep_timer_.expires_after(std::chrono::milliseconds(250));
    sweep_timer_.async_wait([weak = weak_from_this()](const asio::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      auto now = std::chrono::steady_clock::now();
      std::vector<std::shared_ptr<Connection>> all;
      all.reserve(self->connections_.size());
      for (auto& [ptr, c] : self->connections_) all.push_back(c);
      for (auto& c : all) c->check_deadline(now);
      if (!self->draining_ || !self->connections_.empty()) self->sweep();
    });
  }

  void wait_for_connections() {
    if (accepting_paused_ || draining_ || waiting_) return;  // one wait at a time
    waiting_ = true;
    wakeups_.async_wait(asio::posix::stream_descriptor::wait_read,
                        [self = shared_from_this()](const asio::error_code& ec) {
                          self->waiting_ = false;
                          if (ec || self->draining_) return;
                          self->accept_ready();
                          self->wait_for_connections();
                        });
  }

  void accept_ready() {
    epoll_event events[4];
    epoll_wait(wakeups_.native_handle(), events, 4, 0);  // clears the private set's ready list
    for (int i = 0; i < 64; ++i) {  // bounded batch: other sockets get their turn
      if (connections_.size() >= options_.max_connections) {
        accepting_paused_ = true;  // resumed when a connection closes; peers take the rest
        if (!cap_episode_) {
          cap_episode_ = true;
          spdlog::warn(
              "http: {} connection(s) open, this worker's cap (max_connections): new connections "
              "wait in the listen queue or go to other workers (logged once per episode)",
              connections_.size());
        }
        return;
      }
      int fd = accept4(ctx_.listen_fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          out_of_descriptors(errno);
        } else if (fd_episode_) {
          // The queue is empty and the last accepts found descriptors: the episode is over. An
          // accept that succeeds while the queue still holds connections ends nothing, or the
          // episode's two lines flap at every freed descriptor.
          fd_episode_ = false;
          spdlog::info("http: accepting again ({} connection(s) open)", connections_.size());
        }
        return;  // EAGAIN: another worker took it, or nothing left
      }
      std::weak_ptr<Server> weak = weak_from_this();
      auto connection = std::make_shared<Connection>(io_, fd, router_, options_, dates_, figures_,
                                                     [weak](Connection* c) {
                                                       if (auto s = weak.lock()) s->closed(c);
                                                     });
      connections_[connection.get()] = connection;
      figures_.open->set(static_cast<double>(connections_.size()));
      connection->start();
    }
    // The batch ended with the queue perhaps empty: look once more, so that an episode of
    // EMFILE ends (at EAGAIN) even when no new connection wakes the listener.
    if (fd_episode_) {
      asio::post(io_, [weak = weak_from_this()] {
        if (auto self = weak.lock(); self && !self->draining_ && !self->accepting_paused_)
          self->accept_ready();
      });
    }
  }

  // The listening socket stays readable while the connection waits, so retrying at once would
  // spin: stop accepting for a moment (as nginx does), or until one of ours closes.
  void out_of_descriptors(int error) {
    if (!fd_episode_) {
      fd_episode_ = true;
      // Logging (and a sanitizer's checks) may need a descriptor or two: lend them ours.
      spare_fds_.release();
      rlimit limit{};
      getrlimit(RLIMIT_NOFILE, &limit);
      spdlog::error(
          "http: cannot accept: {} ({} connection(s) open, open-file limit {}): pausing accepts "
          "for 100 ms at a time until a descriptor frees (logged once per episode)",
          strerror(error), connections_.size(), static_cast<long long>(limit.rlim_cur));
      spare_fds_.take();
    }
    accepting_paused_ = true;
    fd_backoff_timer_.expires_after(std::chrono::milliseconds(100));
    fd_backoff_timer_.async_wait([weak = weak_from_this()](const asio::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || !self->accepting_paused_) return;
      if (self->connections_.size() >= self->options_.max_connections) return;
      self->accepting_paused_ = false;
      self->wait_for_connections();
    });
  }

  static std::size_t default_max_connections() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 10000;
    auto usable = limit.rlim_cur > 128 ? limit.rlim_cur - 64 : limit.rlim_cur / 2;
    return std::min<std::size_t>(10000, std::max<std::size_t>(1, usable));
  }

  void closed(Connection* c) {
    // Keep the object alive until its handler returns; it holds a shared_ptr to itself meanwhile.
    connections_.erase(c);
    figures_.open->set(static_cast<double>(connections_.size()));
    // Under the cap by a margin before the episode ends, so that it is not one line per close.
    if (cap_episode_ && connections_.size() <= options_.max_connections * 9 / 10) {
      cap_episode_ = false;
      spdlog::info("http: {} connection(s) open, under this worker's cap ({}) again",
                   connections_.size(), options_.max_connections);
    }
    if (accepting_paused_ && connections_.size() < options_.max_connections) {
      accepting_paused_ = false;
      wait_for_connections();
    }
    if (draining_ && connections_.empty()) finish_drain();
  }

  void drain(std::function<void()> done) {
    draining_ = true;
    drain_done_ = std::move(done);
    asio::error_code ignored;
    wakeups_.close(ignored);  // stop accepting; the master keeps the socket for the others
    std::vector<std::shared_ptr<Connection>> all;
    for (auto& [ptr, c] : connections_) all.push_back(c);
    for (auto& c : all) c->drain();
    if (connections_.empty()) return finish_drain();
    drain_timer_.expires_after(options_.drain_timeout);
    drain_timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      if (ec || self->drain_done_ == nullptr) return;
      spdlog::warn("http: {} connection(s) still busy after drain_timeout: closing them",
                   self->connections_.size());
      std::vector<std::shared_ptr<Connection>> rest;
      for (auto& [ptr, c] : self->connections_) rest.push_back(c);
      for (auto& c : rest) c->close();
    });
  }

  void finish_drain() {
    drain_timer_.cancel();
    if (auto done = std::exchange(drain_done_, nullptr)) done();
  }

  Context& ctx_;
  asio::io_context& io_;
  Router router_;
  ServerOptions options_;
  DateCache dates_;
  asio::posix::stream_descriptor wakeups_;
  asio::steady_timer drain_timer_, sweep_timer_;
  std::unordered_map<Connection*, std::shared_ptr<Connection>> connections_;
  HttpFigures figures_;
  asio::steady_timer fd_backoff_timer_;
  SpareDescriptors spare_fds_;
  bool waiting_ = false, accepting_paused_ = false, draining_ = false, fd_episode_ = false;
  bool cap_episode_ = false;  // at max_connections: said once until well under it
  std::function<void()> drain_done_;
};

}  // namespace

ServerOptions ServerOptions::from_config(const Config& c) {
  ServerOptions o;
  o.max_header_bytes = c.http_max_header_size;
  o.max_body_bytes = c.http_max_body_size;
  o.read_timeout = c.http_read_timeout;
  o.idle_timeout = c.http_idle_timeout;
  o.handler_timeout = c.http_handler_timeout;
  o.write_timeout = c.http_write_timeout;
  o.max_queue_time = c.http_max_queue_time;
  o.max_in_flight = static_cast<std::size_t>(c.http_max_in_flight);
  return o;
}

void serve(Context& ctx, Router router) {
  serve(ctx, std::move(router), ServerOptions::from_config(ctx.config()));
}

void serve(Context& ctx, Router router, ServerOptions options) {
  auto server = std::make_shared<Server>(ctx, std::move(router), options);
  server->start();
}

}  // namespace clutch::http
