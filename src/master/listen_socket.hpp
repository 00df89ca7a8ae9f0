// The listening TCP socket the master binds before any child starts, so a port in use fails the
// start (never a second instance silently sharing the port) and port 0 resolves once for all.
#pragma once

#include <string>

namespace clutch::master {

struct ListenSocket {
  int fd = -1;
  int port = 0;  // the real port, also when 0 was asked for
};

// Throws std::runtime_error naming the address and port on failure ("port 7001 is in use").
ListenSocket bind_listen_socket(const std::string& host, int port, int backlog = 511);

}  // namespace clutch::master
