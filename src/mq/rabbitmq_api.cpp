#include "mq/rabbitmq_api.hpp"

namespace clutch::mq {
namespace {

const SharedLibrary kRabbitMq{CLUTCH_RABBITMQ_SONAME, "CLUTCH_RABBITMQ_LIBRARY",
                              "AMQP needs rabbitmq-c", "Debian package librabbitmq4", "AMQP"};

}  // namespace

CLUTCH_SHARED_LIBRARY_LOADER(RabbitMq, CLUTCH_RABBITMQ_FUNCTIONS, rabbitmq, kRabbitMq)

}  // namespace clutch::mq
