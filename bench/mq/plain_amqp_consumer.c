/* The AMQP reference for bench/mq: one plain rabbitmq-c consumer, basic.consume with basic.qos
 * PREFETCH and a manual basic.ack per message, until COUNT are acknowledged. Prints messages/s.
 *   plain_amqp_consumer PORT QUEUE COUNT PREFETCH */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc != 5) return 2;
  int port = atoi(argv[1]);
  const char* queue = argv[2];
  long count = atol(argv[3]);
  int prefetch = atoi(argv[4]);
  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t* socket = amqp_tcp_socket_new(conn);
  if (!socket || amqp_socket_open(socket, "127.0.0.1", port) != AMQP_STATUS_OK) return 1;
  if (amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type !=
      AMQP_RESPONSE_NORMAL)
    return 1;
  amqp_channel_open(conn, 1);
  amqp_basic_qos(conn, 1, 0, (uint16_t)prefetch, 0);
  amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                     amqp_empty_table);
  if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) return 1;
  long done = 0;
  double t0 = now_s();
  while (done < count) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(conn);
    if (amqp_consume_message(conn, &env, NULL, 0).reply_type != AMQP_RESPONSE_NORMAL) return 1;
    amqp_basic_ack(conn, 1, env.delivery_tag, 0);
    amqp_destroy_envelope(&env);
    ++done;
  }
  printf("%.0f\n", done / (now_s() - t0));
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
  return 0;
}
