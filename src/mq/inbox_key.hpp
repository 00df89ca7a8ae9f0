// What an exactly-once inbox records per handled message, shared by its SQLite and PostgreSQL
// stores. Pure.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

namespace clutch::mq {

// What names one handled message: where it came from (the queue's identity, so two queues' "7"
// differ), the consumer's name and the message's id, or a schedule's tick id.
struct InboxKey {
  std::string source;
  std::string queue;
  std::string id;
};

// The inbox's database cannot be reached (refused, or the connection broke mid-transaction): not
// the message's fault, so it is not counted as an attempt.
class InboxUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What an inbox did with a message: ran its work (and recorded it), or found it recorded.
enum class InboxOutcome { kRan, kAlreadyDone };

// One message of a group commit (InboxBatch): its key and work in, what became of it out.
template <typename Work>
struct InboxBatchItem {
  InboxBatchItem(InboxKey k, Work w) : key(std::move(k)), work(std::move(w)) {}
  InboxKey key;
  Work work;
  InboxOutcome outcome = InboxOutcome::kRan;
  std::exception_ptr error;  // the work threw (or its commit failed): nothing of it is kept
};

}  // namespace clutch::mq
