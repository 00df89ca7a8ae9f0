#include "master/control_server.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

namespace clutch::master {
namespace {

constexpr std::size_t kMaxLine = 64 * 1024;

// A directory only this user can use: created 0700, or an existing one owned by us and not open
// to others (a shared /tmp must not let someone else plant the socket's directory).
bool private_dir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return false;
  struct stat st {};
  return lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
         (st.st_mode & 0077) == 0;
}

bool someone_listens(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  bool live = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return live;
}

}  // namespace

std::string default_control_path(const std::string& app_name) {
  if (const char* runtime = std::getenv("XDG_RUNTIME_DIR"); runtime != nullptr && *runtime) {
    std::string dir = std::string(runtime) + "/clutch";
    if (private_dir(dir)) return dir + "/" + app_name + ".sock";
  }
  std::string dir = fmt::format("/tmp/clutch-{}", geteuid());
  if (private_dir(dir)) return dir + "/" + app_name + ".sock";
  return {};
}

// One client: reads lines, answers each in order (a reload's answer may come much later).
class ControlServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(asio::local::stream_protocol::socket socket, Handler& handler)
      : socket_(std::move(socket)), handler_(handler) {}

  void start() {
    ucred peer{};
    socklen_t length = sizeof peer;
    if (getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 ||
        (peer.uid != geteuid() && peer.uid != 0)) {
      spdlog::warn("control socket: refused a client running as uid {} (pid {})", peer.uid,
                   peer.pid);
      send({{"ok", false}, {"error", "permission denied: run as the cluster's user or root"}}, true,
           true);
      return;
    }
    read_line();
  }

 private:
  void read_line() {
    if (busy_ || closing_) return;
    asio::async_read_until(
        socket_, input_, '\n',
        [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
          if (ec) {
            if (ec == asio::error::not_found) {
              self->send({{"ok", false}, {"error", "request line over 64 KiB"}}, true, true);
            }
            return;
          }
          std::string line(asio::buffers_begin(self->input_.data()),
                           asio::buffers_begin(self->input_.data()) + static_cast<long>(n));
          self->input_.consume(n);
          self->handle(line);
        });
  }

  void handle(const std::string& line) {
    nlohmann::json request = nlohmann::json::parse(line, nullptr, false);
    if (request.is_discarded() || !request.is_object() || !request.contains("cmd") ||
        !request["cmd"].is_string()) {
      send({{"ok", false},
            {"error", R"(expected one JSON object a line, like {"v":1,"cmd":"status"})"}},
           true);
      return read_line();
    }
    if (request.value("v", kControlProtocolVersion) != kControlProtocolVersion) {
      send({{"ok", false},
            {"error", fmt::format("protocol version {} is not spoken here (this master speaks {})",
                                  request.value("v", 0), kControlProtocolVersion)}},
           true);
      return read_line();
    }
    busy_ = true;
    // The answer keeps the session alive: nothing else is pending while a request is handled
    // (a reload's answer can come minutes later).
    handler_(request, [self = shared_from_this()](nlohmann::json answer, bool done) {
      self->send(std::move(answer), done);
    });
  }

  void send(nlohmann::json answer, bool done, bool close_after = false) {
    if (closing_) return;
    answer["done"] = done;
    out_.push_back(answer.dump() + "\n");
    if (done) busy_ = false;
    if (close_after) closing_ = true;
    write_next();
    if (done && !closing_) read_line();
  }

  void write_next() {
    if (writing_ || out_.empty()) return;
    writing_ = true;
    asio::async_write(socket_, asio::buffer(out_.front()),
                      [self = shared_from_this()](const asio::error_code& ec, std::size_t) {
                        self->writing_ = false;
                        self->out_.pop_front();
                        if (ec) return self->socket_.close();
                        if (self->out_.empty() && self->closing_) return self->drain_and_close();
                        self->write_next();
                      });
  }

  // After its last answer, a dropped client's unread bytes are read and thrown away (boundedly)
  // before the close: closing with unread input would reset the connection and could destroy the
  // answer before the client reads it.
  void drain_and_close() {
    asio::error_code ignored;
    socket_.shutdown(asio::local::stream_protocol::socket::shutdown_send, ignored);
    if (drained_ > (std::size_t{16} << 20)) return socket_.close();
    scratch_.resize(65536);
    socket_.async_read_some(asio::buffer(scratch_),
                            [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
                              if (ec) return self->socket_.close();
                              self->drained_ += n;
                              self->drain_and_close();
                            });
  }

  asio::local::stream_protocol::socket socket_;
  Handler& handler_;
  std::vector<char> scratch_;
  std::size_t drained_ = 0;
  asio::streambuf input_{kMaxLine};
  std::deque<std::string> out_;
  bool busy_ = false, writing_ = false, closing_ = false;
};

ControlServer::ControlServer(asio::io_context& io, Handler handler)
    : io_(io), handler_(std::move(handler)) {}

ControlServer::~ControlServer() {
  close();
}

bool ControlServer::open(const std::string& path, std::string& error) {
  if (path.empty()) {
    error = "no private directory for it (set control_socket)";
    return false;
  }
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    error = fmt::format("the path {} is too long for a UNIX socket", path);
    return false;
  }
  if (someone_listens(path)) {
    error = fmt::format("{} is in use by another running cluster", path);
    return false;
  }
  ::unlink(path.c_str());  // a stale socket from a master that died
  asio::error_code ec;
  auto acceptor = std::make_unique<asio::local::stream_protocol::acceptor>(io_);
  acceptor->open(asio::local::stream_protocol(), ec);
  // Created 0600 from the start (umask), not chmod-ed after: no window where others may connect.
  mode_t old_mask = ::umask(0177);
  if (!ec) acceptor->bind(asio::local::stream_protocol::endpoint(path), ec);
  ::umask(old_mask);
  if (!ec) acceptor->listen(16, ec);
  if (ec) {
    error = fmt::format("{}: {}", path, ec.message());
    return false;
  }
  // Asio does not open its sockets close-on-exec: the children must not inherit this one.
  ::fcntl(acceptor->native_handle(), F_SETFD, FD_CLOEXEC);
  acceptor_ = std::move(acceptor);
  path_ = path;
  remember_file();
  accept();
  return true;
}

void ControlServer::remember_file() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0) {
    dev_ = st.st_dev;
    ino_ = st.st_ino;
  }
}

void ControlServer::accept() {
  acceptor_->async_accept(
      [this](const asio::error_code& ec, asio::local::stream_protocol::socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor_) return;
        if (!ec) {
          ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
          std::make_shared<Session>(std::move(socket), handler_)->start();
        }
        accept();
      });
}

bool ControlServer::adopt(int fd, std::string& error) {
  sockaddr_un address{};
  socklen_t length = sizeof address;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
      address.sun_family != AF_UNIX) {
    error = "the inherited control socket is not a UNIX socket";
    ::close(fd);
    return false;
  }
  asio::error_code ec;
  auto acceptor = std::make_unique<asio::local::stream_protocol::acceptor>(io_);
  acceptor->assign(asio::local::stream_protocol(), fd, ec);
  if (ec) {
    error = ec.message();
    ::close(fd);
    return false;
  }
  acceptor_ = std::move(acceptor);
  path_ = address.sun_path;
  remember_file();
  accept();
  return true;
}

void ControlServer::release() {
  if (!acceptor_) return;
  asio::error_code ignored;
  acceptor_->close(ignored);
  acceptor_.reset();
}

void ControlServer::close() {
  if (!acceptor_) return;
  // Removed while still listening, and only if the file is still ours. Closing first opened a
  // window in which a starting cluster of the same app found the name free, bound it, and then
  // lost it to this unlink: its clutchctl path then reached the next cluster to bind the name.
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
    ::unlink(path_.c_str());
  release();
}

}  // namespace clutch::master
