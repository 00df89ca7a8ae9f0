#include "master/listen_socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>

namespace clutch::master {

ListenSocket bind_listen_socket(const std::string& host, int port, int backlog, bool reuse_port) {
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
