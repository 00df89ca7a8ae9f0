// The agent's consumer loop and the workers' handlers for `App::consume`.
#pragma once

#include <utility>
#include <vector>

#include "clutch/mq.hpp"
#include "runtime/component.hpp"
#include "runtime/operator_commands.hpp"

namespace clutch::mq {

using ConsumerList = std::vector<ConsumerDeclaration>;

// `commands` (optional) gets clutchctl's "queues", "queue-dead", "queue-requeue", "queue-purge".
void install_agent_consumers(Context& ctx, const ConsumerList& consumers,
                             runtime::OperatorCommands* commands = nullptr);
void install_worker_handlers(Context& ctx, const ConsumerList& consumers);

// The queue consumers as a runtime component: consumers in the agent, handlers in the workers.
std::unique_ptr<runtime::Component> component(ConsumerList consumers);

// The messenger action a consumer's messages travel under: "mq:NAME".
std::string action_of(const ConsumeOptions& options);

// The messenger payload for one queue message: "id\nattempts\nbody". Pure.
std::string encode_delivery(const QueueMessage& message);
void encode_delivery(const QueueMessage& message, std::string& out);  // replaces out's content
QueueMessage decode_delivery(std::string_view payload);

}  // namespace clutch::mq
