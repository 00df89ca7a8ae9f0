// The workers' side of App::consume_exactly_once: each message runs through the inbox (one
// transaction for the handler's writes and the message's record, see mq/sqlite_inbox.hpp), and a
// message the inbox already has is acknowledged without running the handler again.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "clutch/mq.hpp"
#include "mq/inbox_key.hpp"

namespace clutch::mq {

// The header the agent appends to an exactly-once consumer's deliveries: the queue's identity
// (MessageSource::identity), the first part of the inbox's key. The worker takes it off before
// the handler sees the message.
inline constexpr std::string_view kInboxSourceHeader = "clutch.inbox-source";

// The start of a worker's error for a message whose inbox could not be reached: the agent holds
// the message and offers it again after a back-off, without counting an attempt (an outage of the
// database must not dead-letter the queue).
inline constexpr std::string_view kInboxUnavailablePrefix = "inbox unavailable: ";

// "" when `options` suit the kind of handler declared; otherwise why not, naming the key.
std::string inbox_declaration_error(const ConsumeOptions& options, bool exactly_once);
// "" when `inbox` names a database an inbox can be kept in (sqlite:PATH, postgres://...).
std::string inbox_spec_error(const std::string& inbox);

class Inbox;
class OutboxRelay;

// A worker's inbox (its own connection) with its outbox relay and hourly pruning: what every
// exactly-once handler runs through, a queue's messages or a job's ticks.
class ExactlyOnceRunner {
 public:
  // Throws ConfigError naming the database when it cannot be opened; `name` is for the logs.
  static std::shared_ptr<ExactlyOnceRunner> open(Context& ctx, const std::string& inbox,
                                                 const std::string& name,
                                                 std::chrono::hours retention);
  ~ExactlyOnceRunner();
  // Runs `work` once for `key` (kAlreadyDone: the inbox has it, nothing ran), then relays what
  // it published. An unreachable database throws with kInboxUnavailablePrefix.
  InboxOutcome run(const InboxKey& key, const std::function<void(Transaction&)>& work);
  using Item = InboxBatchItem<std::function<void(Transaction&)>>;
  // Group commit: settles items from the front, several per transaction on SQLite (each in a
  // savepoint: one that throws rolls back alone and keeps its error; see
  // SqliteInbox::run_batch), one on PostgreSQL, within about `budget`; returns how many (at
  // least one), and relays what the committed ones published. An unreachable database throws
  // with kInboxUnavailablePrefix, settling nothing.
  std::size_t run_batch(std::span<Item> items, std::chrono::steady_clock::duration budget);

 private:
  ExactlyOnceRunner() = default;
  std::shared_ptr<Inbox> inbox_;
  std::shared_ptr<OutboxRelay> relay_;
};

// Opens this worker's connection to the consumer's inbox (throws ConfigError naming it when it
// cannot), prunes it now and hourly, and handles the consumer's messages through it.
void install_exactly_once_handler(Context& ctx, const ConsumerDeclaration& declaration);

}  // namespace clutch::mq
