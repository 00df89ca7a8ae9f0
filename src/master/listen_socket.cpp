#include "master/listen_socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>

namespace clutch::master {

bool accept_queue(int fd, unsigned& waiting, unsigned& limit) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0 || info.tcpi_state != TCP_LISTEN)
    return false;
  // For a listener Linux reports the queue's length in tcpi_unacked, its limit in tcpi_sacked.
  waiting = info.tcpi_unacked;
  limit = info.tcpi_sacked;
  return true;
}

ListenSocket bind_unix_socket(const std::string& path, unsigned mode, int backlog) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path))
    throw std::runtime_error(fmt::format("unix socket path '{}' is empty or too long", path));
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw std::runtime_error(fmt::format("socket(): {}", std::strerror(errno)));
  // A file left by a master that died is replaced; a socket someone listens on is not.
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool live = connect(probe, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  close(probe);
  if (live) {
    close(fd);
    throw std::runtime_error(
        fmt::format("unix socket {} is in use (is another instance running?)", path));
  }
  unlink(path.c_str());
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      chmod(path.c_str(), mode) != 0 || listen(fd, backlog) != 0) {
    int err = errno;
    close(fd);
    throw std::runtime_error(fmt::format("cannot listen on unix:{}: {}", path, std::strerror(err)));
  }
  return ListenSocket{fd, 0};
}

ListenSocket bind_listen_socket(const std::string& host, int port, int backlog, bool reuse_port) {
  if (host.rfind("unix:", 0) == 0) return bind_unix_socket(host.substr(5), 0660, backlog);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    throw std::runtime_error(fmt::format("cannot resolve host '{}': {}", host, gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(found, freeaddrinfo);
  int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw std::runtime_error(fmt::format("socket(): {}", std::strerror(errno)));
  int one = 1;
  // SO_REUSEADDR lets a restart bind past TIME_WAIT; it does not let two live listeners share a
  // port (that would need SO_REUSEPORT, which we do not set), so a second instance still fails.
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (bind(fd, found->ai_addr, found->ai_addrlen) != 0) {
    int err = errno;
    close(fd);
    if (err == EADDRINUSE) {
      throw std::runtime_error(fmt::format(
          "port {} on {} is already in use (is another instance running?)", port, host));
    }
    throw std::runtime_error(fmt::format("cannot bind {}:{}: {}", host, port, std::strerror(err)));
  }
  if (listen(fd, backlog) != 0) {
    int err = errno;
    close(fd);
    throw std::runtime_error(
        fmt::format("cannot listen on {}:{}: {}", host, port, std::strerror(err)));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  int real_port = bound.ss_family == AF_INET6
                      ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return ListenSocket{fd, real_port};
}

}  // namespace clutch::master

namespace clutch::master {

std::vector<ListenSocket> bind_reuse_port_group(const std::string& host, int port, unsigned count,
                                                int backlog) {
  if (port != 0) {
    ListenSocket probe = bind_listen_socket(host, port, backlog, false);  // throws if taken
    close(probe.fd);
  }
  std::vector<ListenSocket> group;
  try {
    for (unsigned i = 0; i < count; ++i) {
      group.push_back(
          bind_listen_socket(host, group.empty() ? port : group[0].port, backlog, true));
    }
  } catch (...) {
    for (auto& s : group) close(s.fd);
    throw;
  }
  return group;
}

}  // namespace clutch::master
