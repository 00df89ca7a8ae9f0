// What the master knows of each child process and of the slots they fill.
#pragma once

#include <sys/types.h>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ipc/channel.hpp"
#include "ipc/frame.hpp"
#include "master/recent_histogram.hpp"
#include "master/restart_policy.hpp"
#include "messaging/wire.hpp"

namespace clutch::master {

using Clock = std::chrono::steady_clock;

enum class ChildState {
  kStarting,  // spawned, setup running
  kReady,     // takes every kind of message
  kDraining,  // asked to stop (or stopping on its own): no new send_random, finishing its work
  kGone,      // exited; kept only until the exit is handled
};

struct Child {
  Role role = Role::kWorker;
  int slot = 0;  // worker index; 0 for the agent
  pid_t pid = 0;
  ChildState state = ChildState::kStarting;
  Clock::time_point started_at;
  std::shared_ptr<ipc::Channel> channel;
  uint32_t unacked = 0;    // acknowledged messages handed to it and not yet acknowledged
  bool term_sent = false;  // SIGTERM sent by the master
  bool reload_candidate =
      false;  // started to take over a slot (a reload or a replacement), not ready
  // Started to replace the slot's process on its own (over max_rss), not by a rolling reload.
  std::string replacing_because;
  // A worker's max_requests with its jitter, drawn at its spawn (0: no limit).
  uint64_t request_limit = 0;
  // Its requests' queue time over the last 10-20 s (clutch_http_queue_seconds), for status.
  RecentHistogram queue_recent{std::chrono::seconds(10)};
  bool refusing = false;  // messages for it are refused (its queue is full); logged once
  bool hung = false;      // its loop stopped turning: being killed
  Clock::time_point
      last_seen;             // when its channel last delivered a whole frame (a heartbeat at least)
  uint64_t frames_seen = 0;  // the channel's frames_received() at last_seen
  std::string fatal_error;   // what the child reported before dying, if anything
  std::vector<pid_t> blocked_senders;  // paused because this child's output is over high water
  // Shared payloads (master tokens) sent to it that it has not said it read: each holds a
  // reference, released when it says so (kPayloadRead) or dies.
  std::vector<uint64_t> shared_unread;
  // Requests delivered to it and not yet answered: (requester pid, its request id).
  std::vector<std::pair<pid_t, uint64_t>> owed_replies;
  // Its RSS and CPU time as last read from /proc (status and scrapes reuse a recent reading:
  // 64 workers x 2 files per status request would slow the master exactly when it is busiest).
  std::size_t rss_bytes = 0;
  double cpu_seconds = 0;
  Clock::time_point sampled_at{};
  std::unique_ptr<asio::steady_timer> startup_timer, kill_timer, stable_timer;

  bool is_worker() const { return role == Role::kWorker; }
  bool connected() const { return channel && !channel->closed(); }
  bool takes_random() const { return is_worker() && state == ChildState::kReady && connected(); }
  std::string describe() const;
};

// A place in the cluster that a process fills: the agent, or worker i. It outlives its processes
// and carries their crash history.
struct Slot {
  Role role = Role::kWorker;
  int index = 0;
  RestartBackoff backoff;
  RestartBudget budget{0, Millis{0}};
  pid_t current = 0;  // the process filling it, 0 while empty
  std::unique_ptr<asio::steady_timer> restart_timer;
  bool replacing = false;  // a replacement (over max_rss) is starting for it
  Clock::time_point replace_failed_at{};
  bool retired = false;   // scaled away: its process drains and the slot is removed
  bool added = false;     // made by scale and not yet filled: its first process replaces no one
  uint32_t restarts = 0;  // processes started in it after its first
  std::string last_exit;  // how its last process ended, for status
};

// The live children by pid.
class ChildTable {
 public:
  Child* find(pid_t pid) {
    auto it = by_pid_.find(pid);
    return it == by_pid_.end() ? nullptr : it->second.get();
  }
  Child& add(std::unique_ptr<Child> child) {
    Child& ref = *child;
    by_pid_[child->pid] = std::move(child);
    order_.push_back(ref.pid);
    return ref;
  }
  void remove(pid_t pid) {
    by_pid_.erase(pid);
    std::erase(order_, pid);
  }
  // The agent that is connected, if any (there is at most one).
  Child* agent() {
    for (pid_t pid : order_) {
      Child* c = find(pid);
      if (c->role == Role::kAgent && c->state != ChildState::kGone) return c;
    }
    return nullptr;
  }
  // Children in start order (stable iteration for broadcasts).
  template <typename Fn>
  void for_each(Fn&& fn) {
    for (pid_t pid : order_) fn(*find(pid));
  }
  std::size_t size() const { return by_pid_.size(); }

 private:
  std::unordered_map<pid_t, std::unique_ptr<Child>> by_pid_;
  std::vector<pid_t> order_;
};

}  // namespace clutch::master
