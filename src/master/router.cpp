#include "master/router.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include <fcntl.h>

#include "ipc/shared_payload.hpp"
#include "messaging/control_ops.hpp"

namespace clutch::master {

using ipc::FrameHeader;
using ipc::FrameKind;
using messaging::Route;

namespace {

// Calls fn(header, frame bytes) for each frame in a buffer of whole frames.
template <typename Fn>
void for_each_frame(const std::vector<std::byte>& buffer, Fn&& fn) {
  std::size_t at = 0;
  while (at < buffer.size()) {
    FrameHeader h;
    auto bytes = std::span<const std::byte>(buffer.data() + at, buffer.size() - at);
    if (ipc::decode_header(bytes, UINT32_MAX, h) != ipc::DecodeStatus::kOk) return;
    fn(h, buffer.data() + at);
    at += h.frame_size();
  }
}
FrameHeader header_of(const std::byte* raw) {
  FrameHeader h;
  ipc::decode_header(std::span<const std::byte>(raw, ipc::kHeaderSize), UINT32_MAX, h);
  return h;
}

// The reference of the shared payload the frame at `raw` carries (token 0 if none).
ipc::SharedRef shared_ref_of(const std::byte* raw) {
  if ((ipc::flags_of(raw) & ipc::kFlagSharedPayload) == 0) return {};
  return ipc::read_shared_ref(ipc::view_frame(header_of(raw), raw));
}
}  // namespace

std::string Child::describe() const {
  if (role == Role::kAgent) return fmt::format("agent (pid {})", pid);
  return fmt::format("worker {} (pid {})", slot, pid);
}

Router::Router(ChildTable& children, pid_t master_pid, ControlFn on_control,
               ViolationFn on_violation)
    : children_(children),
      master_pid_(master_pid),
      on_control_(std::move(on_control)),
      on_violation_(std::move(on_violation)) {
  rng_state_ ^= static_cast<uint64_t>(master_pid) * 0x100000001B3ULL;
  payloads_.on_free = [this](pid_t sender, uint64_t sender_seq) {
    if (Child* c = children_.find(sender); c != nullptr && c->connected())
      send_control(*c, messaging::kPayloadFree, std::to_string(sender_seq));
  };
}

void Router::on_frame(Child& from, const ipc::FrameView& frame, std::byte* raw) {
  sender_ = &from;
  current_ = frame;
  // Whatever the child wrote there, receivers learn the sender from the master.
  messaging::stamp_sender(raw, from.role, from.pid);
  if ((frame.header.flags & ipc::kFlagSharedPayload) == 0) {
    route_frame(from, frame, raw);
  } else {
    if (uint64_t token = adopt_shared(from, frame, raw); token != 0) {
      route_frame(from, frame, raw);
      payloads_.release(token);  // routed: only the copies kept (holds, redeliveries) keep it now
    }
    send_control(from, messaging::kPayloadTaken, std::to_string(ipc::read_shared_ref(frame).size));
  }
  sender_ = nullptr;
}

uint64_t Router::adopt_shared(Child& from, const ipc::FrameView& frame, std::byte* raw) {
  const FrameHeader& h = frame.header;
  if (h.kind != FrameKind::kMessage && h.kind != FrameKind::kReply) {
    on_violation_(from, "sent a shared payload on a frame that carries no payload");
    return 0;
  }
  ipc::SharedRef ref = ipc::read_shared_ref(frame);
  std::string why = ipc::check_shared_payload(frame.fd, ref.size, max_message_size_);
  uint64_t token = why.empty() ? payloads_.adopt(frame.fd, ref.size, from.pid, ref.token) : 0;
  if (why.empty() && token == 0) {
    why = fmt::format("not delivered: the master already holds {} MiB of large payloads (limit {})",
                      payloads_.bytes() >> 20, payloads_.limit() >> 20);
  }
  if (token != 0) {
    ipc::stamp_shared_token(raw, frame, token);
    return token;
  }
  send_control(from, messaging::kPayloadFree, std::to_string(ref.token));  // not kept: reusable
  if (h.kind == FrameKind::kReply) {
    // The requester is the one waiting: it hears now rather than at its timeout.
    spdlog::warn("{}: reply refused: {}", from.describe(), why);
    if (Child* to = children_.find(h.target_pid); to != nullptr && to->connected())
      send_error(*to, h.id, {}, why, false);
  } else if (h.flags & ipc::kFlagWantAck) {
    spdlog::warn("{}: '{}' refused: {}", from.describe(), frame.action, why);
    fail_ack(from, h.id, why);
  } else {
    send_error(from, h.id, frame.action, why);
  }
  return 0;
}

void Router::retain_shared(const std::byte* raw) {
  if (uint64_t token = shared_ref_of(raw).token) payloads_.retain(token);
}

void Router::release_shared(const std::byte* raw) {
  if (uint64_t token = shared_ref_of(raw).token) payloads_.release(token);
}

void Router::route_frame(Child& from, const ipc::FrameView& frame, std::byte* raw) {
  switch (frame.header.kind) {
    case FrameKind::kMessage:
      route_message(from, frame, raw);
      break;
    case FrameKind::kAck:
      route_ack(from, frame, raw);
      break;
    case FrameKind::kReply:
      route_reply(from, frame, raw);
      break;
    case FrameKind::kControl:
      if (frame.action == messaging::kPayloadRead) {
        // A receiver let go of a large payload: it no longer counts against its queue, nor holds
        // the region (only a token actually sent to it counts: a child cannot free others').
        auto [token, size] = messaging::parse_payload_read(frame.payload);
        auto& unread = from.shared_unread;
        if (auto it = std::find(unread.begin(), unread.end(), token); it != unread.end()) {
          unread.erase(it);
          from.channel->release_held_bytes(size);
          payloads_.release(token);
        }
        break;
      }
      on_control_(from, frame.action, frame.payload);
      break;
    case FrameKind::kError:
      on_violation_(from, "sent an error frame, which only the master may send");
      break;
  }
}

void Router::route_message(Child& from, const ipc::FrameView& frame, std::byte* raw) {
  const FrameHeader& h = frame.header;
  std::size_t size = h.frame_size();
  if (frame.action.starts_with(messaging::kReservedPrefix)) {
    send_error(from, h.id, frame.action,
               fmt::format("action '{}' is reserved for the clutch runtime", frame.action));
    return;
  }
  std::optional<Route> route = messaging::route_of(h);
  if (!route) {
    send_error(from, h.id, frame.action, fmt::format("unknown route {}", h.route));
    return;
  }
  ++routed_[h.route];
  switch (*route) {
    case Route::kBroadcast:
      if (agent_ != nullptr && agent_->connected()) deliver(*agent_, raw, size, true);
      [[fallthrough]];
    case Route::kApp:
    case Route::kOthers:
      if (holding_for_workers()) {
        hold_for_workers(from, frame, raw, size);
      } else {
        deliver_to_workers(raw, size, *route == Route::kOthers ? from.pid : 0, true);
      }
      break;
    case Route::kAgent:
      if (agent_ != nullptr && agent_->connected()) {
        deliver(*agent_, raw, size, true);
        owe_reply(*agent_, from, h);
      } else {
        // The agent is restarting: keep the message for the next one.
        agent_hold_.insert(agent_hold_.end(), raw, raw + size);
        retain_shared(raw);
        if (agent_hold_.size() > hold_limit_) {
          from.channel->pause_reading();
          hold_blocked_senders_.push_back(from.pid);
        }
      }
      break;
    case Route::kRandom:
      if (h.flags & ipc::kFlagWantAck) {
        uint64_t id = next_master_id_;
        KeyTable::Handle key = nullptr;
        if (!frame.key.empty()) {
          // The same work sent again (a restarted sender re-reading its queue): answered from
          // the message already known instead of being run a second time.
          if (const KeyTable::Entry* known = keys_.find_or_start(frame.key, id, key)) {
            ++duplicates_absorbed_;
            if (known->in_flight == 0)
              answer_handled(from, h.id, known->handled_by);
            else
              acked_[known->in_flight].waiters.push_back({from.pid, h.id});
            break;
          }
        }
        if (random_targets_.empty() && acked_waiting_bytes_ + size > hold_limit_) {
          // Nothing ready to take it and the hold is full: the sender hears so at once (its ack
          // fails with no handler named) instead of the master growing without bound.
          if (key != nullptr) keys_.finish(key, 0);  // not taken: the same key may come again
          fail_ack(from, h.id,
                   fmt::format("no worker is ready and the master already holds {} MiB of "
                               "acknowledged messages for one",
                               acked_waiting_bytes_ >> 20));
          break;
        }
        ++next_master_id_;
        AckedMessage& m = acked_[id];
        m.waiters.push_back({from.pid, h.id});
        m.frame.assign(raw, raw + size);
        retain_shared(raw);
        m.key = key;
        ipc::stamp_id(m.frame.data(), id);
        deliver_acked(id, m);
      } else if (Child* to = deliver_random(raw, size, true)) {
        owe_reply(*to, from, h);
      }
      break;
    case Route::kPid: {
      Child* to = children_.find(h.target_pid);
      if (to == nullptr || !to->connected()) {
        send_error(from, h.id, frame.action,
                   fmt::format("send_to: no process with pid {} in this cluster", h.target_pid));
      } else if (admits(*to, from, frame)) {
        deliver(*to, raw, size, true);
        owe_reply(*to, from, h);
      }
      break;
    }
    case Route::kNone:
      on_violation_(from, "sent a message without a route");
      break;
  }
}

void Router::route_ack(Child& from, const ipc::FrameView& frame, std::byte* raw) {
  auto it = acked_.find(frame.header.id);
  // An ack for a message that was meanwhile given to another worker (this one was thought dead)
  // is stale: the other worker's ack is the one that counts.
  if (it == acked_.end() || it->second.assigned != from.pid) return;
  AckedMessage m = std::move(it->second);
  acked_.erase(it);
  release_shared(m.frame.data());
  if (from.unacked > 0) --from.unacked;
  // Only a success is final; a failed message is sent again (retried) under the same key.
  if (m.key != nullptr) keys_.finish(m.key, (frame.header.flags & ipc::kFlagFailed) ? 0 : from.pid);
  std::size_t size = frame.header.frame_size();
  // Every waiter but the first gets a copy, renumbered before the first's id is stamped into
  // the raw frame (which its channel may borrow).
  for (std::size_t i = 1; i < m.waiters.size(); ++i) {
    Child* origin = children_.find(m.waiters[i].pid);
    if (origin == nullptr || !origin->connected()) continue;
    std::vector<std::byte> copy(raw, raw + size);
    ipc::stamp_id(copy.data(), m.waiters[i].id);
    deliver(*origin, copy.data(), size);
  }
  if (m.waiters.empty()) return;
  Child* origin = children_.find(m.waiters.front().pid);
  if (origin == nullptr || !origin->connected()) {
    spdlog::debug("ack for a message from pid {} that has exited", m.waiters.front().pid);
    return;
  }
  ipc::stamp_id(raw, m.waiters.front().id);
  deliver(*origin, raw, size, true);
}

void Router::answer_handled(Child& to, uint64_t id, pid_t handled_by) {
  send_ack(to, id, Role::kWorker, handled_by, {}, false);
}

void Router::drop_acked(uint64_t master_id) {
  auto it = acked_.find(master_id);
  if (it == acked_.end()) return;
  if (it->second.key != nullptr) keys_.finish(it->second.key, 0);
  if (it->second.assigned == 0) acked_waiting_bytes_ -= it->second.frame.size();
  release_shared(it->second.frame.data());
  acked_.erase(it);  // a stale id left in acked_waiting_ is skipped when it comes up
  ++dropped_without_sender_;
}

void Router::route_reply(Child& from, const ipc::FrameView& frame, std::byte* raw) {
  auto& owed = from.owed_replies;
  std::pair<pid_t, uint64_t> answered{frame.header.target_pid, frame.header.id};
  if (auto it = std::find(owed.rbegin(), owed.rend(), answered); it != owed.rend())
    owed.erase(std::next(it).base());
  Child* to = children_.find(frame.header.target_pid);
  if (to == nullptr || !to->connected()) {
    spdlog::debug("{} replied to pid {}, which has exited", from.describe(),
                  frame.header.target_pid);
    return;
  }
  deliver(*to, raw, frame.header.frame_size(), true);
}

void Router::deliver(Child& to, const std::byte* raw, std::size_t size, bool from_input) {
  if (ipc::flags_of(raw) & ipc::kFlagSharedPayload) {
    // Its memfd goes with it (the channel sends it with the frame's bytes).
    ipc::SharedRef ref = shared_ref_of(raw);
    int fd = payloads_.fd(ref.token);
    int copy = fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0) {
      spdlog::error("a large message for {} not delivered: its payload {}", to.describe(),
                    fd < 0 ? "is gone" : fmt::format("cannot be passed on ({})", strerror(errno)));
      return;
    }
    to.channel->attach_fd(copy, ref.size);
    to.shared_unread.push_back(ref.token);
    payloads_.retain(ref.token);
  }
  if (from_input) {
    // The frame is in the sender's read buffer: the channel may write it from there.
    // Registered for the commit once per batch, on its first borrowed frame.
    bool registered = to.channel->borrowing();
    if (to.channel->send_borrowed(raw, size) && !registered) borrowers_.push_back(to.channel);
  } else {
    to.channel->output().append(raw, size);
    to.channel->flush_soon();
  }
  // Back-pressure: the receiver is not keeping up, so stop reading from whoever feeds it --
  // unless it is one worker among others that keep up: pausing the sender would stall its
  // traffic to all of them for the one (a hung worker would stall everyone). That worker's queue
  // grows instead, up to worker_queue_limit_, past which messages for it are refused.
  if (sender_ != nullptr && sender_ != &to && to.channel->over_high_water() &&
      !sender_->channel->paused() && !(to.is_worker() && some_worker_keeps_up())) {
    sender_->channel->pause_reading();
    to.blocked_senders.push_back(sender_->pid);
    to.channel->wait_for_drain();
  }
}

void Router::set_max_message_size(std::size_t bytes) {
  // Room for at least two of the largest messages, so a limit never refuses one on its own.
  std::size_t limit = std::max(std::size_t{64} << 20, 2 * (bytes + 64 * 1024));
  hold_limit_ = worker_queue_limit_ = limit;
  max_message_size_ = bytes;
  // Large payloads held for redelivery or for a missing target: as much as the holds allow.
  payloads_.set_limit(std::max(std::size_t{256} << 20, 4 * limit));
}

bool Router::some_worker_keeps_up() const {
  return std::any_of(random_targets_.begin(), random_targets_.end(),
                     [](const Child* c) { return !c->channel->over_high_water(); });
}

bool Router::admits(Child& to, Child& from, const ipc::FrameView& frame) {
  std::size_t queued = to.channel->pending_output();
  if (!to.is_worker() || queued == 0 || queued + frame.header.frame_size() <= worker_queue_limit_) {
    to.refusing = false;
    return true;
  }
  if (!to.refusing) {
    to.refusing = true;
    spdlog::warn(
        "{} is not reading its messages ({} MiB queued for it): refusing new ones for it "
        "until it catches up",
        to.describe(), to.channel->pending_output() >> 20);
  }
  ++refused_;
  send_error(from, frame.header.id, frame.action,
             fmt::format("'{}' not delivered to {}: {} MiB are already queued for it", frame.action,
                         to.describe(), to.channel->pending_output() >> 20),
             false);
  return false;
}

bool Router::holding_for_workers() const {
  // Before the first ready, workers of the first start may not exist yet; later, none may be
  // running (all restarting). Either way the message waits rather than reach no worker.
  return !cluster_ready_ || random_targets_.empty();
}

void Router::deliver_to_workers(const std::byte* raw, std::size_t size, pid_t except,
                                bool from_input) {
  children_.for_each([&](Child& c) {
    if (!c.is_worker() || !c.connected() || c.pid == except) return;
    if (sender_ != nullptr && !admits(c, *sender_, current_)) return;
    deliver(c, raw, size, from_input);
  });
}

void Router::hold_for_workers(Child& from, const ipc::FrameView& frame, const std::byte* raw,
                              std::size_t size) {
  if (workers_hold_.size() + size > hold_limit_) {
    send_error(from, frame.header.id, frame.action,
               fmt::format("'{}' not delivered: no worker is running and the {} MiB the master "
                           "holds for them are full",
                           frame.action, hold_limit_ >> 20));
    return;
  }
  workers_hold_.insert(workers_hold_.end(), raw, raw + size);
  retain_shared(raw);
}

void Router::cluster_ready() {
  cluster_ready_ = true;
  flush_holds();
}

void Router::commit_borrowed() {
  for (auto& channel : borrowers_) channel->commit_borrowed();
  borrowers_.clear();
}

Child* Router::deliver_random(const std::byte* raw, std::size_t size, bool from_input) {
  if (random_targets_.empty()) {
    random_hold_.insert(random_hold_.end(), raw, raw + size);
    retain_shared(raw);
    if (random_hold_.size() > hold_limit_ && sender_ != nullptr) {
      sender_->channel->pause_reading();
      hold_blocked_senders_.push_back(sender_->pid);
    }
    return nullptr;
  }
  // xorshift64: cheap and good enough to spread load; not for anything secret.
  rng_state_ ^= rng_state_ << 13;
  rng_state_ ^= rng_state_ >> 7;
  rng_state_ ^= rng_state_ << 17;
  std::size_t n = random_targets_.size();
  std::size_t pick = rng_state_ % n;
  // A worker that is not keeping up is passed over while another one is.
  for (std::size_t i = 0; i < n; ++i) {
    Child* c = random_targets_[(pick + i) % n];
    if (!c->channel->over_high_water()) {
      deliver(*c, raw, size, from_input);
      return c;
    }
  }
  deliver(*random_targets_[pick], raw, size, from_input);
  return random_targets_[pick];
}

void Router::owe_reply(Child& to, Child& from, const FrameHeader& h) {
  if ((h.flags & ipc::kFlagRequest) != 0) to.owed_replies.emplace_back(from.pid, h.id);
}

Child* Router::least_busy_worker() {
  if (random_targets_.empty()) return nullptr;
  // Least unacknowledged work first; among equals, rotate so every worker gets some.
  std::size_t n = random_targets_.size();
  Child* best = nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    Child* c = random_targets_[(least_busy_cursor_ + i) % n];
    // One that is not keeping up (over its high-water mark) only when all are.
    auto rank = [](const Child* w) { return std::pair(w->channel->over_high_water(), w->unacked); };
    if (best == nullptr || rank(c) < rank(best)) best = c;
  }
  least_busy_cursor_ = (least_busy_cursor_ + 1) % n;
  return best;
}

void Router::deliver_acked(uint64_t master_id, AckedMessage& m) {
  Child* to = least_busy_worker();
  if (to == nullptr) {
    m.assigned = 0;
    acked_waiting_.push_back(master_id);
    acked_waiting_bytes_ += m.frame.size();
    return;
  }
  m.assigned = to->pid;
  ++to->unacked;
  deliver(*to, m.frame.data(), m.frame.size());
}

void Router::fail_ack(Child& to, uint64_t id, std::string_view reason) {
  send_ack(to, id, Role::kMaster, master_pid_, reason, true);
}

void Router::send_ack(Child& to, uint64_t id, Role role, pid_t sender, std::string_view error,
                      bool failed) {
  FrameHeader h;
  h.kind = FrameKind::kAck;
  h.flags = failed ? ipc::kFlagFailed : 0;
  messaging::set_sender(h, role, sender);
  h.id = id;
  ipc::append_frame(to.channel->output(), h, {}, error);
  to.channel->flush_soon();
}

void Router::send_error(Child& to, uint64_t id, std::string_view action, std::string_view message,
                        bool log) {
  if (log) spdlog::warn("{}: {}", to.describe(), message);
  FrameHeader h;
  h.kind = FrameKind::kError;
  messaging::set_sender(h, Role::kMaster, master_pid_);
  h.id = id;
  ipc::append_frame(to.channel->output(), h, action, message);
  to.channel->flush_soon();
}

void Router::send_runtime(Child& to, std::string_view action, std::string_view payload) {
  if (!to.connected()) return;
  FrameHeader h;
  h.kind = FrameKind::kMessage;
  messaging::set_route(h, Route::kPid);
  messaging::set_sender(h, Role::kMaster, master_pid_);
  h.target_pid = to.pid;
  ipc::append_frame(to.channel->output(), h, action, payload);
  to.channel->flush_soon();
}

void Router::send_control(Child& to, std::string_view op, std::string_view payload) {
  if (!to.connected()) return;
  FrameHeader h;
  h.kind = FrameKind::kControl;
  messaging::set_sender(h, Role::kMaster, master_pid_);
  ipc::append_frame(to.channel->output(), h, op, payload);
  to.channel->flush_soon();
}

std::pair<pid_t, std::vector<pid_t>> Router::ready_members() {
  pid_t agent = 0;
  std::vector<pid_t> workers;
  children_.for_each([&](Child& c) {
    if (c.state != ChildState::kReady) return;
    if (c.is_worker())
      workers.push_back(c.pid);
    else
      agent = c.pid;
  });
  return {agent, std::move(workers)};
}

void Router::announce_members(Child* only) {
  auto [agent, workers] = ready_members();
  std::string pids = fmt::format("[{}]", fmt::join(workers, ","));
  std::string members = fmt::format(R"({{"agent":{},"workers":{}}})", agent, pids);
  children_.for_each([&](Child& c) {
    if (c.state != ChildState::kReady && c.state != ChildState::kDraining) return;
    if (only != nullptr && &c != only) return;
    send_runtime(c, messaging::kActionMembers, members);
    if (!c.is_worker()) send_runtime(c, messaging::kActionPids, pids);
  });
  if (only == nullptr) {
    announced_agent_ = agent;
    announced_workers_ = std::move(workers);
  }
}

void Router::announce_member_changes() {
  auto [agent, workers] = ready_members();
  std::vector<pid_t> joined, left;
  for (pid_t pid : workers) {
    if (std::find(announced_workers_.begin(), announced_workers_.end(), pid) ==
        announced_workers_.end())
      joined.push_back(pid);
  }
  for (pid_t pid : announced_workers_) {
    if (std::find(workers.begin(), workers.end(), pid) == workers.end()) left.push_back(pid);
  }
  if (joined.empty() && left.empty() && agent == announced_agent_) return;
  // What changed, not the whole list: a reload of N workers then costs N small frames per step
  // instead of N lists of N pids (O(N^2) bytes per step). A process that got the whole list
  // lately finds its own news in it again, which it ignores.
  std::string delta = fmt::format(R"({{"agent":{},"joined":[{}],"left":[{}]}})", agent,
                                  fmt::join(joined, ","), fmt::join(left, ","));
  std::string pids = fmt::format("[{}]", fmt::join(workers, ","));
  // clutch:pids reaches the app's handlers: only when the workers changed. A new agent alone
  // changes nothing in it, and that agent already had the whole list when it became ready.
  bool workers_changed = !joined.empty() || !left.empty();
  children_.for_each([&](Child& c) {
    if (c.state != ChildState::kReady && c.state != ChildState::kDraining) return;
    send_runtime(c, messaging::kActionMembersDelta, delta);
    if (workers_changed && !c.is_worker()) send_runtime(c, messaging::kActionPids, pids);
  });
  announced_agent_ = agent;
  announced_workers_ = std::move(workers);
}

void Router::targets_changed() {
  agent_ = children_.agent();
  random_targets_.clear();
  children_.for_each([&](Child& c) {
    if (c.takes_random()) random_targets_.push_back(&c);
  });
  if (least_busy_cursor_ >= random_targets_.size()) least_busy_cursor_ = 0;
  flush_holds();
}

void Router::flush_holds() {
  sender_ = nullptr;
  if (!agent_hold_.empty()) {
    if (agent_ != nullptr && agent_->connected()) {
      std::vector<std::byte> held;
      held.swap(agent_hold_);
      for_each_frame(held, [&](const FrameHeader& h, const std::byte* raw) {
        deliver(*agent_, raw, h.frame_size());
        release_shared(raw);
      });
    }
  }
  if (!holding_for_workers() && !workers_hold_.empty()) {
    std::vector<std::byte> held;
    held.swap(workers_hold_);
    for_each_frame(held, [&](const FrameHeader& h, const std::byte* raw) {
      deliver_to_workers(raw, h.frame_size(),
                         messaging::route_of(h) == Route::kOthers ? h.sender_pid : 0);
      release_shared(raw);
    });
  }
  if (!random_targets_.empty()) {
    if (!random_hold_.empty()) {
      std::vector<std::byte> held;
      held.swap(random_hold_);
      for_each_frame(held, [&](const FrameHeader& h, const std::byte* raw) {
        deliver_random(raw, h.frame_size());
        release_shared(raw);
      });
    }
    while (!acked_waiting_.empty() && !random_targets_.empty()) {
      uint64_t id = acked_waiting_.front();
      acked_waiting_.pop_front();
      auto it = acked_.find(id);
      if (it == acked_.end() || it->second.assigned != 0) continue;  // dropped meanwhile
      acked_waiting_bytes_ -= it->second.frame.size();
      deliver_acked(id, it->second);
    }
  }
  if (agent_hold_.size() <= hold_limit_ && random_hold_.size() <= hold_limit_) {
    for (pid_t pid : std::exchange(hold_blocked_senders_, {})) {
      if (Child* c = children_.find(pid); c != nullptr && c->connected())
        c->channel->resume_reading();
    }
  }
}

void Router::on_child_gone(Child& child) {
  std::erase(random_targets_, &child);
  // The payloads it had not read: its copies died with it.
  for (uint64_t token : std::exchange(child.shared_unread, {})) payloads_.release(token);
  resume_blocked(child);
  // Requests it was handling: their senders hear now rather than at their timeout.
  for (const auto& [pid, id] : std::exchange(child.owed_replies, {})) {
    if (Child* requester = children_.find(pid); requester != nullptr && requester->connected()) {
      send_error(*requester, id, {}, fmt::format("{} exited before replying", child.describe()),
                 false);
    }
  }
  // Messages it sent: it can no longer be told their outcome. Those no live sender waits for
  // and no worker has taken are dropped (a sender that restarts sends what still matters again,
  // and a keyed resend then finds nothing to attach to); those being handled run to the end,
  // so that a keyed resend attaches to them instead of running them twice.
  std::vector<uint64_t> unwanted, orphaned;
  for (auto& [id, m] : acked_) {
    bool had = std::erase_if(m.waiters, [&](const Waiter& w) { return w.pid == child.pid; }) > 0;
    if (had && m.waiters.empty() && m.assigned == 0) unwanted.push_back(id);
    if (m.assigned == child.pid) orphaned.push_back(id);
  }
  if (!unwanted.empty()) {
    spdlog::warn(
        "{} exited with {} acknowledged message(s) no worker had taken yet: dropped, as no one is "
        "left to be told their outcome",
        child.describe(), unwanted.size());
    for (uint64_t id : unwanted) drop_acked(id);
  }
  // Every message it had not acknowledged goes to another worker (or waits for one), unless no
  // sender waits for it any more.
  std::sort(orphaned.begin(), orphaned.end());  // keep the original order among them
  if (!orphaned.empty()) {
    spdlog::info("{} exited with {} unacknowledged message(s): handing them to other workers",
                 child.describe(), orphaned.size());
  }
  child.unacked = 0;
  for (uint64_t id : orphaned) {
    auto it = acked_.find(id);
    if (it == acked_.end()) continue;
    if (it->second.waiters.empty()) {
      drop_acked(id);
      continue;
    }
    deliver_acked(id, it->second);
  }
}

void Router::resume_blocked(Child& receiver) {
  for (pid_t pid : std::exchange(receiver.blocked_senders, {})) {
    if (Child* c = children_.find(pid); c != nullptr && c->connected())
      c->channel->resume_reading();
  }
}

std::size_t Router::fail_unacknowledged(std::string_view reason) {
  std::size_t count = acked_.size();
  for (auto& [id, m] : acked_) {
    for (const Waiter& w : m.waiters) {
      Child* origin = children_.find(w.pid);
      if (origin != nullptr && origin->connected()) fail_ack(*origin, w.id, reason);
    }
  }
  for (auto& [id, m] : acked_) release_shared(m.frame.data());
  acked_.clear();
  acked_waiting_.clear();
  acked_waiting_bytes_ = 0;
  keys_.forget_in_flight();
  return count;
}

}  // namespace clutch::master
