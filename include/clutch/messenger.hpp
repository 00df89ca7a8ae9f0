// The messenger: messages between the agent and the workers, always routed through the master.
// Single-threaded like the rest of a clutch process: call it from the process's loop (handlers,
// timers), never from another thread.
//
// Messages sent before their receivers exist are held by the master, never dropped silently:
// - for the workers (broadcast's worker part, send_to_app, send_to_others): held until the
//   cluster is first ready, then delivered to every worker before clutch:ready; later, while no
//   worker is ready (all restarting), held until one is, then delivered to every running worker;
// - send_random (acknowledged or not): held until a worker is ready;
// - send_to_agent: held while the agent restarts.
// Each hold is bounded (64 MiB); a send that would overflow the workers' hold is reported through
// on_error() (or the ack callback), and an overflowing agent or send_random hold pauses its
// sender until it drains.
// An acknowledged message whose sender dies before any worker took it is dropped (logged by the
// master): no one is left to be told its outcome, and a sender that restarts sends again what
// still matters (with send_random_once, a resend attaches to a message still being handled).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace clutch {

enum class Role { kMaster, kAgent, kWorker };
std::string_view to_string(Role role);

// Who sent a message, as stamped by the master (a child cannot forge it).
struct Sender {
  Role role = Role::kWorker;
  int pid = 0;
};

// A send the messenger refuses: reserved action, payload over max_message_size, queue full.
class MessengerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class MessageState;
namespace runtime {
class MessengerClient;
}
namespace detail {
class ReservedScope;
}

// Takes over a message's acknowledgement or reply beyond the handler's return (after the
// handler's own I/O). Dropping it unanswered fails the message, so nothing waits forever.
class Deferred {
 public:
  Deferred() = default;
  // Acknowledges an acknowledged send_random (and answers a request with empty data).
  void ack();
  // Answers a request with `data` (and acknowledges).
  void reply(std::string_view data);
  // Reports failure to the sender: its ack or reply callback gets `error`.
  void fail(std::string_view error);
  bool pending() const;
  // The message's data, kept alive with the Deferred (the handler's views are not).
  std::string_view data() const { return data_ ? std::string_view(*data_) : std::string_view(); }

 private:
  friend class Message;
  Deferred(std::shared_ptr<MessageState> state, std::string_view data)
      : state_(std::move(state)), data_(std::make_shared<const std::string>(data)) {}
  std::shared_ptr<MessageState> state_;
  std::shared_ptr<const std::string> data_;
};

// What a handler receives. The views are valid until the handler returns.
class Message {
 public:
  std::string_view action() const { return action_; }
  std::string_view data() const { return data_; }
  const Sender& sender() const { return sender_; }
  // True for an acknowledged send_random: it is acknowledged when the handler returns (or fails
  // when it throws), unless the handler calls defer().
  bool wants_ack() const { return wants_ack_; }
  // True for a request(): the sender waits for reply().
  bool is_request() const { return is_request_; }
  // Answers a request now.
  void reply(std::string_view data) const;
  // Keeps the ack/reply for later: the handler's return then answers nothing.
  Deferred defer() const;

 private:
  friend class runtime::MessengerClient;  // only the runtime makes one
  Message(std::string_view action, std::string_view data, Sender sender, bool wants_ack,
          bool is_request, std::shared_ptr<MessageState> state)
      : action_(action),
        data_(data),
        sender_(sender),
        wants_ack_(wants_ack),
        is_request_(is_request),
        state_(std::move(state)) {}

  std::string_view action_, data_;
  Sender sender_;
  bool wants_ack_, is_request_;
  std::shared_ptr<MessageState> state_;
};

// The outcome of an acknowledged send_random.
struct AckResult {
  bool ok = false;
  std::string error;   // the handler's exception, or why no worker handled it
  int handled_by = 0;  // the worker's pid
};

// The outcome of a request().
struct Reply {
  bool ok = false;
  std::string data;
  std::string error;  // timeout, unknown pid, the handler's exception
  Sender from;
};

// Where a request() goes.
struct Target {
  enum class Kind { kAgent, kRandom, kPid } kind = Kind::kAgent;
  int pid = 0;
  static Target agent() { return {Kind::kAgent, 0}; }
  static Target random_worker() { return {Kind::kRandom, 0}; }
  static Target process(int pid) { return {Kind::kPid, pid}; }
};

// A process joining (ready) or leaving (stopping or dead) the cluster.
struct MemberEvent {
  bool joined = false;
  Role role = Role::kWorker;
  int pid = 0;
};

// Why a message could not be delivered (e.g. send_to an unknown pid), reported to the sender.
struct DeliveryError {
  std::string action;
  std::string message;
};

using Handler = std::function<void(const Message&)>;
using HandlerId = uint64_t;

class Messenger {
 public:
  virtual ~Messenger() = default;

  // Every agent and worker, the sender included.
  virtual void broadcast(std::string_view action, std::string_view data = {}) = 0;
  // Every worker.
  virtual void send_to_app(std::string_view action, std::string_view data = {}) = 0;
  // Every worker but the sender.
  virtual void send_to_others(std::string_view action, std::string_view data = {}) = 0;
  // The agent (held by the master while the agent restarts).
  virtual void send_to_agent(std::string_view action, std::string_view data = {}) = 0;
  // Exactly one live worker, chosen by the master.
  virtual void send_random(std::string_view action, std::string_view data = {}) = 0;
  // Exactly one worker, acknowledged: if the chosen worker dies before its handler finishes, the
  // master hands the message to another. `on_ack` runs once, in this process.
  virtual void send_random(std::string_view action, std::string_view data,
                           std::function<void(const AckResult&)> on_ack) = 0;
  // Acknowledged send_random with an idempotency key (1 to 254 bytes): while a message with the
  // same key is held by the master or being handled, or was handled successfully not long ago
  // (the master remembers the last 8,192 keys), a second send with that key is not delivered
  // again: its `on_ack` gets the first one's outcome. A sender that restarts and sends the same
  // work again (the MQ consumer keys each message by its queue id) does not get it run twice.
  virtual void send_random_once(std::string_view action, std::string_view data,
                                std::string_view key,
                                std::function<void(const AckResult&)> on_ack) = 0;
  // The process `pid`; an unknown pid is reported through on_error().
  virtual void send_to(int pid, std::string_view action, std::string_view data = {}) = 0;
  // Sends and waits (without blocking the loop) for the receiver's reply, or a timeout. A
  // receiver that exits before replying fails the request at once (Reply::error says so).
  // Awaitable form: clutch::co::request (clutch/coro.hpp).
  virtual void request(Target target, std::string_view action, std::string_view data,
                       std::chrono::milliseconds timeout,
                       std::function<void(const Reply&)> on_reply) = 0;

  virtual HandlerId on(std::string_view action, Handler handler) = 0;
  virtual HandlerId once(std::string_view action, Handler handler) = 0;
  virtual void off(std::string_view action) = 0;
  virtual void off(HandlerId id) = 0;

  // Membership, as the master last announced it: changes at the end of the master's loop turn,
  // or, during a rolling reload, within 50 ms (and all of them when it completes).
  virtual std::vector<int> workers() const = 0;
  virtual int agent() const = 0;
  virtual void on_member(std::function<void(const MemberEvent&)> fn) = 0;
  // Undeliverable messages (default: logged as a warning).
  virtual void on_error(std::function<void(const DeliveryError&)> fn) = 0;

  // Bytes written but not yet taken by the master. Sends fail with MessengerError past a limit;
  // a producer that sends in bulk checks this and waits for on_writable().
  virtual std::size_t pending_bytes() const = 0;
  virtual void on_writable(std::function<void()> fn) = 0;

 protected:
  // Reserved prefixes: `clutch:` (the runtime's messages: handlers may listen, nobody may send),
  // `schedule:` and `mq:` (the scheduler's ticks and the queues' deliveries: neither sent nor
  // handled by user code, so a handler cannot steal a tick by accident). Only the runtime's own
  // features use them, inside a detail::ReservedScope.
  bool reserved_allowed() const { return reserved_allowed_; }

 private:
  friend class detail::ReservedScope;
  bool reserved_allowed_ = false;
};

}  // namespace clutch
