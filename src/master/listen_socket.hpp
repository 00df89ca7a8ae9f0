// The listening TCP socket the master binds before any child starts, so a port in use fails the
// start (never a second instance silently sharing the port) and port 0 resolves once for all.
#pragma once

#include <string>
#include <vector>

namespace clutch::master {

// "127.0.0.1:7001", "[::1]:7001": an address and port as URLs and logs write them.
inline std::string endpoint_text(const std::string& host, int port) {
  if (host.rfind("unix:", 0) == 0) return host;
  return host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                             : host + ":" + std::to_string(port);
}

struct ListenSocket {
  int fd = -1;
  int port = 0;  // the real port, also when 0 was asked for
};

// Throws std::runtime_error naming the address and port on failure ("port 7001 is in use").
// `host` "unix:/run/app.sock" binds a UNIX stream socket instead (mode 0660, port 0).
ListenSocket bind_listen_socket(const std::string& host, int port, int backlog = 511,
                                bool reuse_port = false);

// `count` SO_REUSEPORT sockets on one port (one per worker slot). A plain bind is tried first, so
// a port that anyone (another clutch instance included) already holds fails the start instead of
// silently sharing the traffic.
ListenSocket bind_unix_socket(const std::string& path, unsigned mode, int backlog = 511);

std::vector<ListenSocket> bind_reuse_port_group(const std::string& host, int port, unsigned count,
                                                int backlog = 511);

// The kernel's accept queue of a listening TCP socket (TCP_INFO, as raindrops reads it for
// unicorn): connections that finished their handshake and wait for a worker's accept, and the
// queue's limit. False for a socket that is not a TCP listener (a UNIX socket).
bool accept_queue(int fd, unsigned& waiting, unsigned& limit);

}  // namespace clutch::master
