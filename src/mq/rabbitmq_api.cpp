#include "mq/rabbitmq_api.hpp"

namespace clutch::mq {
namespace {

const SharedLibrary kRabbitMq{CLUTCH_RABBITMQ_SONAME, "CLUTCH_RABBITMQ_LIBRARY",
                              "AMQP needs rabbitmq-c", "Debian package librabbitmq4", "AMQP"};

CLUTCH_LIBRARY_LOADER(RabbitMq, CLUTCH_RABBITMQ_FUNCTIONS, kRabbitMq)

}  // namespace

const RabbitMq& rabbitmq() {
  return load_once<RabbitMq, load_RabbitMq>();
}

}  // namespace clutch::mq
