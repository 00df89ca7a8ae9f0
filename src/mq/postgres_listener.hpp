// LISTEN on a PostgreSQL channel from a thread of its own, on a connection of its own: the queue
// table's trigger NOTIFYs on every insert, and the listener calls `notified` (from its thread),
// so a consumer whose queue ran dry hears of new messages at once instead of asking the table
// again and again. A connection that breaks is made again with back-off; `notified` is called
// after each reconnection too, since notifications sent meanwhile are gone.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "mq/libpq_api.hpp"

namespace clutch::mq {

class PostgresListener {
 public:
  PostgresListener(const LibpqApi& pq, std::string conninfo, std::string channel,
                   std::function<void()> notified);
  // Stops the thread: within ~250 ms, or the connect timeout while a connection is being made.
  ~PostgresListener();
  PostgresListener(const PostgresListener&) = delete;
  PostgresListener& operator=(const PostgresListener&) = delete;

 private:
  void run();
  // Listens on one connection until it breaks or the listener stops.
  void listen_on(PGconn* conn);
  // Sleeps `ms` in short steps; false once stopping.
  bool pause(int ms);

  const LibpqApi& pq_;
  std::string conninfo_, channel_;
  std::function<void()> notified_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace clutch::mq
