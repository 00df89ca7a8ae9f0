#include "mq/postgres_listener.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "mq/postgres_connection.hpp"

namespace clutch::mq {

PostgresListener::PostgresListener(const LibpqApi& pq, std::string conninfo, std::string channel,
                                   std::function<void()> notified)
    : pq_(pq),
      conninfo_(std::move(conninfo)),
      channel_(std::move(channel)),
      notified_(std::move(notified)),
      thread_([this] { run(); }) {}

PostgresListener::~PostgresListener() {
  stopping_ = true;
  thread_.join();
}

bool PostgresListener::pause(int ms) {
  for (int waited = 0; waited < ms && !stopping_; waited += 50)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return !stopping_;
}

void PostgresListener::run() {
  int delay_ms = 100;
  while (!stopping_) {
    PGconn* conn = nullptr;
    try {
      conn = pg_connect(pq_, conninfo_, 5);
    } catch (const std::exception& e) {
      // The queue's own connection reports the outage; this one only retries.
      spdlog::debug("postgres listener: {}", e.what());
    }
    if (conn != nullptr) {
      delay_ms = 100;
      listen_on(conn);
      pq_.PQfinish(conn);
    }
    if (!pause(delay_ms)) break;
    delay_ms = std::min(delay_ms * 2, 5000);
  }
}

void PostgresListener::listen_on(PGconn* conn) {
  // The channel is the table's name, a plain identifier (postgres_url.hpp): quoted as is.
  std::string listen = "LISTEN \"" + channel_ + "\"";
  PGresult* r = pq_.PQexec(conn, listen.c_str());
  bool ok = pq_.PQresultStatus(r) == PGRES_COMMAND_OK;
  pq_.PQclear(r);
  if (!ok) {
    spdlog::warn("postgres listener: {}: {}", listen, pg_text(pq_.PQerrorMessage(conn)));
    return;
  }
  notified_();  // whatever was inserted before LISTEN took effect
  while (!stopping_) {
    pollfd p{pq_.PQsocket(conn), POLLIN, 0};
    int ready = ::poll(&p, 1, 250);
    if (ready < 0 && errno != EINTR) return;
    if (ready <= 0) continue;
    if (pq_.PQconsumeInput(conn) == 0) return;  // the connection broke
    bool any = false;
    while (PGnotify* n = pq_.PQnotifies(conn)) {
      pq_.PQfreemem(n);
      any = true;
    }
    if (any) notified_();
  }
}

}  // namespace clutch::mq
