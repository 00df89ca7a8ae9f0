// The messenger inside an agent or worker: encodes sends into frames for the master, dispatches
// received frames to handlers, and keeps the callbacks of acknowledged sends and requests.
#pragma once

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "clutch/messenger.hpp"
#include "clutch/metrics.hpp"
#include "common/string_hash.hpp"
#include "ipc/channel.hpp"
#include "ipc/shared_payload.hpp"
#include "messaging/wire.hpp"

namespace clutch::runtime {

class MessengerClient final : public Messenger,
                              public std::enable_shared_from_this<MessengerClient> {
 public:
  MessengerClient(asio::io_context& io, std::shared_ptr<ipc::Channel> channel, Role role,
                  std::size_t max_message_size);

  void broadcast(std::string_view action, std::string_view data) override;
  void send_to_app(std::string_view action, std::string_view data) override;
  void send_to_others(std::string_view action, std::string_view data) override;
  void send_to_agent(std::string_view action, std::string_view data) override;
  void send_random(std::string_view action, std::string_view data) override;
  void send_random(std::string_view action, std::string_view data,
                   std::function<void(const AckResult&)> on_ack) override;
  void send_random_once(std::string_view action, std::string_view data, std::string_view key,
                        std::function<void(const AckResult&)> on_ack) override;
  void send_to(int pid, std::string_view action, std::string_view data) override;
  void request(Target target, std::string_view action, std::string_view data,
               std::chrono::milliseconds timeout,
               std::function<void(const Reply&)> on_reply) override;
  HandlerId on(std::string_view action, Handler handler) override;
  HandlerId once(std::string_view action, Handler handler) override;
  void off(std::string_view action) override;
  void off(HandlerId id) override;
  std::vector<int> workers() const override { return workers_; }
  int agent() const override { return agent_; }
  void on_member(std::function<void(const MemberEvent&)> fn) override {
    member_fns_.push_back(std::move(fn));
  }
  void on_error(std::function<void(const DeliveryError&)> fn) override {
    error_fn_ = std::move(fn);
  }
  std::size_t pending_bytes() const override { return channel_->pending_output(); }
  void on_writable(std::function<void()> fn) override {
    writable_fns_.push_back(std::move(fn));
    channel_->wait_for_drain();
  }

  // Runtime side.
  void handle_frame(const ipc::FrameView& frame);
  void send_control(std::string_view op, std::string_view payload = {});
  // Answers for a message (ack or reply); used by MessageState.
  void send_answer(bool is_request, uint64_t id, int to_pid, bool ok, std::string_view data);
  // Acknowledged messages and requests handed to this process and not yet answered.
  std::size_t open_messages() const { return open_messages_; }
  void message_opened() { ++open_messages_; }
  void message_closed() { --open_messages_; }
  // Runtime hooks for the reserved actions.
  std::function<void()> on_cluster_ready;
  std::function<void()> on_drain_ok;
  int master_pid = 0;  // send_to(it) is refused with a clear error
  // Counts the messages handed to this process's handlers (clutch_messenger_handled_total).
  Counter* handled_counter = nullptr;
  // Any other control frame from the master (e.g. an operator's "ask").
  std::function<void(std::string_view op, std::string_view payload)> on_master_control;

 private:
  struct Entry {
    HandlerId id;
    Handler handler;
    bool once;
    bool removed = false;
  };
  // Every request's deadline, earliest first; one timer stands for the earliest. A reply only
  // erases its entry: a timer per request cost an allocation, and cancelling it a posted handler
  // (a loop turn) per round trip.
  using Deadlines = std::multimap<asio::steady_timer::time_point, uint64_t>;
  struct PendingRequest {
    std::function<void(const Reply&)> on_reply;
    std::string action;  // for the timeout's message
    std::chrono::milliseconds timeout;
    Deadlines::iterator deadline;
  };

  uint64_t send(messaging::Route route, int target_pid, std::string_view action,
                std::string_view data, uint8_t flags = 0, std::string_view key = {});
  HandlerId add_handler(std::string_view action, Handler handler, bool once);
  void dispatch(const ipc::FrameView& frame);
  // A frame whose payload came in a memfd: handled from a mapping of the region.
  void handle_shared(const ipc::FrameView& frame);
  // Appends a frame, its payload in a memfd when that is large (ipc/shared_payload.hpp).
  void send_frame(ipc::FrameHeader h, std::string_view action, std::string_view data,
                  std::string_view key = {});
  void apply_members(std::string_view json);
  void apply_member_changes(std::string_view json);  // clutch:members-delta
  void sweep_removed();  // drops removed handlers, unless a dispatch is running
  void finish_request(uint64_t id, Reply reply);
  void arm_request_timer(asio::steady_timer::time_point at);
  void expire_requests();  // answers every request past its deadline, re-arms for the next

  asio::io_context& io_;
  std::shared_ptr<ipc::Channel> channel_;
  Role role_;
  std::size_t max_message_size_;
  ipc::PayloadPool payload_pool_;  // this process's regions for large payloads
  ipc::PayloadMappings mappings_;  // the regions large payloads arrived in, kept mapped
  std::size_t queue_limit_;
  uint64_t next_id_ = 1;
  HandlerId next_handler_id_ = 1;
  // Looked up once per message, by string_view. Node-based, and a node is never erased, so a
  // dispatch loop's reference to an action's entries survives a handler adding another action,
  // and entries_for may keep a pointer to the last action's.
  using Entries = std::vector<std::unique_ptr<Entry>>;
  std::unordered_map<std::string, Entries, StringHash, std::equal_to<>> handlers_;
  Entries* entries_for(std::string_view action);  // nullptr when nobody ever listened
  std::string last_action_;                       // the last action dispatched ...
  Entries* last_entries_ = nullptr;               // ... and its handlers (nodes are never erased)
  int dispatch_depth_ = 0;      // dispatches running (a handler may cause another)
  bool sweep_pending_ = false;  // entries were removed while one ran
  struct DispatchScope {
    explicit DispatchScope(MessengerClient& c) : client(c) { ++client.dispatch_depth_; }
    ~DispatchScope() {
      if (--client.dispatch_depth_ == 0 && client.sweep_pending_) client.sweep_removed();
    }
    MessengerClient& client;
  };
  std::unordered_map<uint64_t, std::function<void(const AckResult&)>> pending_acks_;
  std::unordered_map<uint64_t, PendingRequest> pending_requests_;
  Deadlines request_deadlines_;
  asio::steady_timer request_timer_;
  bool request_timer_armed_ = false;
  asio::steady_timer::time_point request_timer_at_;  // when armed
  std::vector<int> workers_;
  int agent_ = 0;
  std::vector<std::function<void(const MemberEvent&)>> member_fns_;
  std::function<void(const DeliveryError&)> error_fn_;
  std::vector<std::function<void()>> writable_fns_;
  std::size_t open_messages_ = 0;
  std::map<std::string, bool, std::less<>> warned_unhandled_;
};

// The answer owed for one acknowledged message or request.
}  // namespace clutch::runtime

namespace clutch {
class MessageState {
 public:
  MessageState(std::weak_ptr<runtime::MessengerClient> client, bool is_request, uint64_t id,
               int sender_pid);
  ~MessageState();
  void answer(bool ok, std::string_view data);
  bool done() const { return done_; }
  bool deferred = false;

 private:
  std::weak_ptr<runtime::MessengerClient> client_;
  bool is_request_;
  uint64_t id_;
  int sender_pid_;
  bool done_ = false;
};
}  // namespace clutch
