// rabbitmq-c, loaded when the first AMQP link starts instead of at every process's exec.
//
// librabbitmq brings in OpenSSL (libssl, libcrypto), and the dynamic linker's relocations of
// those alone dirty about 450 KiB of private memory in each process that loads them: the
// master, the agent and every worker, though only an agent with an amqp:// source (or a
// producer) ever calls them. Loaded on demand, that cost is paid by the processes that use AMQP.
#pragma once

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include "common/shared_library.hpp"

// Every rabbitmq-c function clutch calls; each becomes a member of RabbitMq of the same name.
#define CLUTCH_RABBITMQ_FUNCTIONS(X) \
  X(amqp_basic_ack)                  \
  X(amqp_basic_consume)              \
  X(amqp_basic_get)                  \
  X(amqp_basic_publish)              \
  X(amqp_basic_qos)                  \
  X(amqp_basic_reject)               \
  X(amqp_channel_close)              \
  X(amqp_channel_open)               \
  X(amqp_confirm_select)             \
  X(amqp_connection_close)           \
  X(amqp_consume_message)            \
  X(amqp_data_in_buffer)             \
  X(amqp_destroy_connection)         \
  X(amqp_destroy_envelope)           \
  X(amqp_destroy_message)            \
  X(amqp_error_string2)              \
  X(amqp_frames_enqueued)            \
  X(amqp_get_rpc_reply)              \
  X(amqp_get_sockfd)                 \
  X(amqp_login)                      \
  X(amqp_maybe_release_buffers)      \
  X(amqp_new_connection)             \
  X(amqp_queue_declare)              \
  X(amqp_queue_purge)                \
  X(amqp_read_message)               \
  X(amqp_send_method)                \
  X(amqp_set_handshake_timeout)      \
  X(amqp_set_rpc_timeout)            \
  X(amqp_simple_wait_frame_noblock)  \
  X(amqp_socket_open_noblock)        \
  X(amqp_tcp_socket_new)

namespace clutch::mq {

CLUTCH_SHARED_LIBRARY(RabbitMq, CLUTCH_RABBITMQ_FUNCTIONS, rabbitmq)

}  // namespace clutch::mq
