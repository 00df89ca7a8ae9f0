// The agent's consumer loop and the workers' handlers for `App::consume`.
#pragma once

#include <utility>
#include <vector>

#include "clutch/mq.hpp"

namespace clutch::mq {

using ConsumerList = std::vector<std::pair<ConsumeOptions, QueueHandler>>;

void install_agent_consumers(Context& ctx, const ConsumerList& consumers);
void install_worker_handlers(Context& ctx, const ConsumerList& consumers);

// The messenger payload for one queue message: "id\nattempts\nbody". Pure.
std::string encode_delivery(const QueueMessage& message);
void encode_delivery(const QueueMessage& message, std::string& out);  // replaces out's content
QueueMessage decode_delivery(std::string_view payload);

}  // namespace clutch::mq
