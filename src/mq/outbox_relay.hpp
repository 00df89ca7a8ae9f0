// Publishes what exactly-once handlers staged in the outbox (mq/outbox.hpp) once their
// transactions committed, on a thread of its own (a queue that hangs delays the relay, never the
// worker's loop), and removes each entry right after its queue has it, on that thread and its own
// connection to the inbox's database (so a worker that dies leaves as few published entries
// unremoved as can be). Every 5 s it also claims entries
// whose claim ran out (their worker died before relaying them, or their queue was down) and
// publishes those. At least once: a worker that dies between the publish and the removal has
// the entry published again; the header clutch.outbox-id lets an exactly-once consumer
// downstream run it once.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "clutch/context.hpp"
#include "clutch/mq.hpp"
#include "mq/outbox.hpp"

namespace clutch {
class OffLoopWorker;
}

namespace clutch::mq {

class OutboxRelay : public std::enable_shared_from_this<OutboxRelay> {
 public:
  // `store` is on the worker's connection (for the sweep, on the loop); `open_remover` opens
  // another on the relay's thread, when it first removes an entry.
  using OpenStore = std::function<std::shared_ptr<OutboxStore>()>;
  OutboxRelay(Context& ctx, std::shared_ptr<OutboxStore> store, OpenStore open_remover,
              std::string consumer);
  ~OutboxRelay();
  // Starts the sweep of stale entries (every 5 s).
  void start();
  // Publishes committed entries (on the relay's thread); removes each once published.
  void relay(std::vector<OutboxEntry> entries);

 private:
  void sweep();

  Context& ctx_;
  std::shared_ptr<OutboxStore> store_;
  std::string consumer_;
  // What the relay's thread keeps: the queues relayed to, by URL, and its own outbox store.
  struct ThreadState {
    std::map<std::string, std::unique_ptr<MessageSource>> queues;
    OpenStore open_remover;
    std::shared_ptr<OutboxStore> remover;
  };
  std::shared_ptr<ThreadState> on_thread_;
  std::unique_ptr<OffLoopWorker> thread_;
  std::set<int64_t> in_flight_;  // handed to the thread, not yet published or failed
};

// Why `url` cannot take a published message ("" if it can): checked when a handler publishes.
std::string outbox_url_error(const std::string& url);

}  // namespace clutch::mq
