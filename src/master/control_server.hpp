// The master's control socket: a UNIX stream socket (mode 0600; peers must run as the master's
// user or as root, checked with SO_PEERCRED) that speaks line-delimited JSON. One request per
// line: {"v":1,"cmd":"status"}; the answer is one or more lines, the last with "done":true.
// A malformed or oversized line gets an error answer; a bad client is dropped, never followed.
#pragma once

#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>

namespace clutch::master {

inline constexpr int kControlProtocolVersion = 1;

// Where the control socket goes when config control_socket is empty: $XDG_RUNTIME_DIR/clutch/
// if that is usable, else /tmp/clutch-UID/ (created 0700); the file is APP.sock.
std::string default_control_path(const std::string& app_name);

class ControlServer {
 public:
  // Sends one answer line; `done` marks the last one for this request.
  using Answer = std::function<void(nlohmann::json line, bool done)>;
  using Handler = std::function<void(const nlohmann::json& request, Answer answer)>;

  ControlServer(asio::io_context& io, Handler handler);
  ~ControlServer();
  // Binds `path` (a stale file from a dead master is replaced; a live one is not); false, with
  // the reason in `error`, if it cannot.
  bool open(const std::string& path, std::string& error);
  // Serves on a listening socket handed over by an earlier master (its path is kept).
  bool adopt(int fd, std::string& error);
  // Stops serving and removes the path, if the file there is still the one this server bound.
  void close();
  // Stops serving without removing the path: a new master serves on the same socket.
  void release();
  int fd() const { return acceptor_ ? acceptor_->native_handle() : -1; }
  const std::string& path() const { return path_; }

 private:
  class Session;
  void accept();

  asio::io_context& io_;
  Handler handler_;
  std::unique_ptr<asio::local::stream_protocol::acceptor> acceptor_;
  std::string path_;
  // The socket file this server bound (or adopted): close() removes the path only while it is
  // this file, never one another cluster of the same app bound there since.
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  void remember_file();
};

}  // namespace clutch::master
