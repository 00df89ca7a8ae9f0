// The master's half of the messenger: forwards each frame to the processes its route names,
// without decoding the payload; keeps acknowledged send_random messages until a worker confirms
// them (handing them to another worker if the chosen one dies); holds messages whose target is not
// there yet; and pauses a sender whose receivers cannot keep up.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "master/child.hpp"
#include "master/key_table.hpp"
#include "master/shared_payloads.hpp"

namespace clutch::master {

class Router {
 public:
  // A lifecycle frame (kControl) from a child: "ready", "fatal" (payload: the error), "draining".
  using ControlFn = std::function<void(Child& from, std::string_view op, std::string_view payload)>;
  // A child broke the protocol (e.g. sent a frame kind only the master may send).
  using ViolationFn = std::function<void(Child& from, const std::string& reason)>;

  Router(ChildTable& children, pid_t master_pid, ControlFn on_control, ViolationFn on_violation);

  void on_frame(Child& from, const ipc::FrameView& frame, std::byte* raw);
  // The sender's read buffer is about to be reused: every channel that borrowed frames from it
  // writes or copies them now. Called from each channel's batch-end hook.
  void commit_borrowed();

  // Sizes the holds and per-worker queues so that they always fit messages of this size.
  void set_max_message_size(std::size_t bytes);
  // The cluster is ready for the first time: messages held for the workers go out now.
  void cluster_ready();
  // Call after any change of a child's state or of the table: rebuilds the targets and delivers
  // what was held for want of a target.
  void targets_changed();
  // A child is gone: its unacknowledged messages go to other workers, its paused senders resume.
  void on_child_gone(Child& child);
  // The child's pending output fell below its low-water mark: resume the senders it paused.
  void resume_blocked(Child& receiver);
  // Sends a runtime message (action "clutch:...") from the master.
  void send_runtime(Child& to, std::string_view action, std::string_view payload);
  void send_control(Child& to, std::string_view op, std::string_view payload = {});
  // clutch:members to everyone (or only to `only`) and clutch:pids to the agent.
  void announce_members(Child* only = nullptr);
  // To everyone, only what changed since the last announcement (clutch:members-delta), and
  // clutch:pids to the agent. Nothing when nothing changed.
  void announce_member_changes();
  // At the end of a shutdown: tells the senders of still unacknowledged messages that they were
  // not handled, instead of dropping them silently. Returns how many there were.
  std::size_t fail_unacknowledged(std::string_view reason);

  std::size_t unacknowledged() const { return acked_.size(); }
  // Keyed sends answered from a message already held, in flight or handled (not delivered again).
  uint64_t duplicates_absorbed() const { return duplicates_absorbed_; }
  // Acknowledged messages dropped because every sender that could acknowledge them had died.
  uint64_t dropped_without_sender() const { return dropped_without_sender_; }
  // Messages routed so far, by route (indexed by messaging::Route).
  const std::array<uint64_t, 7>& routed() const { return routed_; }
  // Messages refused for a worker that was not reading (its queue full).
  uint64_t refused() const { return refused_; }
  // Large payloads (memfds) the master holds for frames it may still deliver.
  const SharedPayloads& shared_payloads() const { return payloads_; }

 private:
  // A sender owed an acknowledged message's outcome, under its own id for it.
  struct Waiter {
    pid_t pid = 0;
    uint64_t id = 0;
  };
  struct AckedMessage {
    // Usually one; more when a keyed send attached to a message already held or in flight.
    std::vector<Waiter> waiters;
    pid_t assigned = 0;              // 0 while waiting for a worker
    KeyTable::Handle key = nullptr;  // its idempotency key in keys_, if the sender gave one
    std::vector<std::byte> frame;
  };

  void route_frame(Child& from, const ipc::FrameView& frame, std::byte* raw);
  // A shared-payload frame: checks its memfd and puts it under a token the frame then carries.
  // 0 when refused (the sender, or for a reply the requester, is told why).
  uint64_t adopt_shared(Child& from, const ipc::FrameView& frame, std::byte* raw);
  // A copy of the frame at `raw` is kept, or let go: its shared payload (if any) with it.
  void retain_shared(const std::byte* raw);
  void release_shared(const std::byte* raw);
  void route_message(Child& from, const ipc::FrameView& frame, std::byte* raw);
  void route_ack(Child& from, const ipc::FrameView& frame, std::byte* raw);
  void route_reply(Child& from, const ipc::FrameView& frame, std::byte* raw);
  // from_input: `raw` is in the sender's read buffer, so the receiver's channel may borrow it
  // until commit_borrowed() instead of copying it.
  void deliver(Child& to, const std::byte* raw, std::size_t size, bool from_input = false);
  // The worker it went to, or null when it was held for want of one.
  Child* deliver_random(const std::byte* raw, std::size_t size, bool from_input = false);
  // A request delivered to `to`: if `to` exits before replying, `from` is told at once.
  void owe_reply(Child& to, Child& from, const ipc::FrameHeader& h);
  // Every connected worker but `except` (0: none excepted).
  void deliver_to_workers(const std::byte* raw, std::size_t size, pid_t except,
                          bool from_input = false);
  bool holding_for_workers() const;
  void hold_for_workers(Child& from, const ipc::FrameView& frame, const std::byte* raw,
                        std::size_t size);
  void deliver_acked(uint64_t master_id, AckedMessage& message);
  // Answers a keyed send whose key was handled lately, without delivering it again.
  void answer_handled(Child& to, uint64_t id, pid_t handled_by);
  void drop_acked(uint64_t master_id);
  Child* least_busy_worker();
  void send_error(Child& to, uint64_t id, std::string_view action, std::string_view message,
                  bool log = true);
  // An acknowledged message fails without a handler having run (the sender does not count it
  // as an attempt).
  void fail_ack(Child& to, uint64_t id, std::string_view reason);
  // An ack frame from the master on behalf of `sender` (a worker's earlier success, or itself).
  void send_ack(Child& to, uint64_t id, Role role, pid_t sender, std::string_view error,
                bool failed);
  // Whether a message for `to` may be queued: a worker past worker_queue_limit_ is not reading
  // (hung or far behind), so the sender is told instead. Always true for the agent.
  bool admits(Child& to, Child& from, const ipc::FrameView& frame);
  bool some_worker_keeps_up() const;
  void flush_holds();

  ChildTable& children_;
  pid_t master_pid_;
  SharedPayloads payloads_;
  std::size_t max_message_size_ = std::size_t{64} << 20;
  ControlFn on_control_;
  ViolationFn on_violation_;
  std::vector<std::shared_ptr<ipc::Channel>> borrowers_;  // borrowed in this input batch
  Child* sender_ = nullptr;  // the child whose frames are being routed (for back-pressure)
  ipc::FrameView current_;   // the frame being routed (for the errors of admits())

  // Rebuilt by targets_changed(), so routing a message looks nothing up.
  Child* agent_ = nullptr;
  std::vector<Child*> random_targets_;
  uint64_t rng_state_ = 0x9E3779B97F4A7C15ULL;
  std::size_t least_busy_cursor_ = 0;

  std::unordered_map<uint64_t, AckedMessage> acked_;
  std::deque<uint64_t> acked_waiting_;   // acknowledged messages with no worker to take them yet
  std::size_t acked_waiting_bytes_ = 0;  // bounded by hold_limit_
  uint64_t next_master_id_ = 1;
  KeyTable keys_{8192};  // idempotency keys in flight (their master id), and handled lately
  std::pair<pid_t, std::vector<pid_t>> ready_members();  // the agent and workers now ready
  pid_t announced_agent_ = 0;
  std::vector<pid_t> announced_workers_;
  uint64_t duplicates_absorbed_ = 0, dropped_without_sender_ = 0, refused_ = 0;
  std::array<uint64_t, 7> routed_{};

  // Frames held while their target is missing: for the agent (while it restarts) and for
  // send_random (while no worker is ready). Bounded: a sender that fills them is paused.
  std::vector<std::byte> agent_hold_, random_hold_;
  // broadcast / send_to_app / send_to_others frames waiting for workers (see holding_for_workers);
  // a sender that would overflow it is told, not paused.
  std::vector<std::byte> workers_hold_;
  bool cluster_ready_ = false;
  std::vector<pid_t> hold_blocked_senders_;
  std::size_t hold_limit_ = std::size_t{64} << 20;
  // What may queue for one worker that is not reading before messages for it are refused.
  std::size_t worker_queue_limit_ = std::size_t{64} << 20;
};

}  // namespace clutch::master
