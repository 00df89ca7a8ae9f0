// The URL of an AMQP 0-9-1 queue (RabbitMQ):
//   amqp://USER:PASSWORD@HOST:PORT/VHOST?queue=Q&dead=Q.dead&prefetch=256&heartbeat=30
// The vhost is percent-encoded ("%2F" is "/", the default when the path is empty).
#pragma once

#include <string>

namespace clutch::mq {

struct AmqpUrl {
  std::string host = "127.0.0.1";
  int port = 5672;
  std::string user = "guest";
  std::string password = "guest";
  std::string vhost = "/";
  std::string queue;       // required
  std::string dead_queue;  // where dead letters go; default QUEUE.dead
  int prefetch = 256;      // basic.qos: deliveries the broker sends ahead of acks
  int heartbeat_s = 30;    // 0: none
};

// Throws ConfigError naming what is wrong. Pure.
AmqpUrl parse_amqp_url(const std::string& url);

}  // namespace clutch::mq
