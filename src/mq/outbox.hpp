// The outbox (issue 23): messages an exactly-once handler publishes (Transaction::publish) are
// staged as rows of clutch_outbox in the inbox's database, inside the handler's transaction, so
// they exist if and only if it commits; the worker relays them after the commit
// (mq/outbox_relay.hpp). The store is the table's statements, one implementation per database;
// it runs on the inbox's connection, on the worker's loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace clutch::mq {

// The header a relayed Redis or AMQP message carries: the staged row's random token, the key by
// which an exactly-once consumer downstream recognises a relay that was repeated.
inline constexpr std::string_view kOutboxIdHeader = "clutch.outbox-id";

// How long a staged message belongs to the worker that staged (or last claimed) it: past that a
// sweep of any worker of the consumer publishes it.
inline constexpr std::chrono::seconds kOutboxClaim{30};

struct OutboxEntry {
  int64_t id = 0;
  std::string url, body, token;
};

class OutboxStore {
 public:
  virtual ~OutboxStore() = default;
  // Inside the handler's open transaction, on its connection.
  virtual OutboxEntry stage(const std::string& url, std::string_view body) = 0;
  // Claims (for another kOutboxClaim) up to `max` entries whose claim ran out.
  virtual std::vector<OutboxEntry> claim_stale(std::size_t max) = 0;
  // The queue has it.
  virtual void remove(int64_t id) = 0;
};

// A random 128-bit token in hex.
std::string outbox_token();

// Unix milliseconds now.
int64_t outbox_now_ms();

}  // namespace clutch::mq
