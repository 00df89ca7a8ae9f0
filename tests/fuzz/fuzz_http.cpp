// The HTTP request path on arbitrary bytes: a real Connection (llhttp, clutch's header checks and
// limits, routing, pipelining) fed over a loopback TCP connection, until it closes or goes idle.
// Any crash, sanitizer report or hang is a finding.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <asio/io_context.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "clutch/config.hpp"
#include "clutch/http.hpp"
#include "http/connection.hpp"
#include "http/response_writer.hpp"

using namespace clutch::http;

namespace {

struct Harness {
  asio::io_context io;
  Router router;
  ServerOptions options;
  DateCache dates;
  clutch::Metrics metrics;
  HttpFigures figures{metrics, clutch::Config{}.http_duration_buckets_us};
  int listener = -1;
  sockaddr_in address{};

  Harness() {
    router.get("/", [](Exchange ex) { ex.send(200, "hello"); });
    router.post("/echo", [](Exchange ex) {
      std::string body = ex.request().body;
      ex.send(200, body);
    });
    router.get("/orders/:id", [](Exchange ex) { ex.send(200, std::string(ex.param("id"))); });
    router.use([](Exchange ex, const std::function<void()>& next) {
      ex.on_send([](Response& r) { r.set_header("X-Fuzz", "1"); });
      next();
    });
    options.max_header_bytes = 4096;
    options.max_body_bytes = 16384;
    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address);
    getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
    listen(listener, 16);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static Harness h;
  if (size > 32 * 1024) return 0;
  // Harness trouble (ports, descriptors) is no finding: the input is skipped.
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (client < 0) return 0;
  linger abort{1, 0};  // no TIME_WAIT left behind: 100,000 connections would use up the ports
  setsockopt(client, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  if (connect(client, reinterpret_cast<sockaddr*>(&h.address), sizeof h.address) != 0) {
    close(client);
    return 0;
  }
  int server = accept4(h.listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (server < 0) {
    close(client);
    return 0;
  }
  for (std::size_t sent = 0; sent < size;) {
    ssize_t n = send(client, data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the connection is already gone: what was sent is the input
    sent += static_cast<std::size_t>(n);
  }
  shutdown(client, SHUT_WR);
  bool closed = false;
  auto connection =
      std::make_shared<Connection>(h.io, server, h.router, h.options, h.dates, h.figures,
                                   [&closed](Connection*) { closed = true; });
  connection->start();
  char sink[65536];
  // Bounded: every turn either moves bytes or the connection is idle, waiting for more input
  // that will never come (the client's side is shut), which ends in a close on EOF.
  for (int turn = 0; turn < 2000 && !closed; ++turn) {
    h.io.restart();
    h.io.poll();
    while (recv(client, sink, sizeof sink, MSG_DONTWAIT) > 0) {
    }
  }
  if (!closed) connection->close();
  h.io.restart();
  h.io.poll();
  connection.reset();
  close(client);
  return 0;
}
