#include "runtime/messenger_client.hpp"

#include "runtime/uncaught.hpp"

#include "ipc/shared_payload.hpp"
#include "messaging/control_ops.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

namespace clutch {

std::string_view to_string(Role role) {
  switch (role) {
    case Role::kMaster:
      return "master";
    case Role::kAgent:
      return "agent";
    case Role::kWorker:
      return "worker";
  }
  return "unknown";
}

MessageState::MessageState(std::weak_ptr<runtime::MessengerClient> client, bool is_request,
                           uint64_t id, int sender_pid)
    : client_(std::move(client)), is_request_(is_request), id_(id), sender_pid_(sender_pid) {
  if (auto c = client_.lock()) c->message_opened();
}

MessageState::~MessageState() {
  if (!done_) answer(false, "the handler dropped the message without answering it");
}

void MessageState::answer(bool ok, std::string_view data) {
  if (done_) return;
  done_ = true;
  if (auto c = client_.lock()) {
    c->send_answer(is_request_, id_, sender_pid_, ok, data);
    c->message_closed();
  }
}

void Deferred::ack() {
  if (state_) state_->answer(true, {});
}
void Deferred::reply(std::string_view data) {
  if (state_) state_->answer(true, data);
}
void Deferred::fail(std::string_view error) {
  if (state_) state_->answer(false, error);
}
bool Deferred::pending() const {
  return state_ && !state_->done();
}

void Message::reply(std::string_view data) const {
  if (!is_request_ || !state_) throw MessengerError("reply(): this message is not a request");
  state_->answer(true, data);
}

Deferred Message::defer() const {
  if (state_) state_->deferred = true;
  return Deferred(state_, data_);
}

}  // namespace clutch

namespace clutch::runtime {

namespace {
// A user callback (on_ack, on_reply, on_member, on_error, on_writable) that throws is logged; it
// must not unwind through the channel's read loop and take the process down.
template <typename Fn, typename... Args>
void call_user(const char* what, Fn& fn, Args&&... args) {
  try {
    fn(std::forward<Args>(args)...);
  } catch (const std::exception& e) {
    uncaught(fmt::format("{} callback", what), e.what());
  } catch (...) {
    uncaught(fmt::format("{} callback", what), "a non-standard exception");
  }
}
}  // namespace

using ipc::FrameHeader;
using ipc::FrameKind;
using messaging::Route;

namespace {
// Every frame a child receives was stamped by the master (its own frames included).
Role sender_role(const FrameHeader& h) {
  return messaging::role_of(h).value_or(Role::kWorker);
}
bool from_master(const FrameHeader& h) {
  return messaging::role_of(h) == Role::kMaster;
}
}  // namespace

MessengerClient::MessengerClient(asio::io_context& io, std::shared_ptr<ipc::Channel> channel,
                                 Role role, std::size_t max_message_size)
    : io_(io),
      channel_(std::move(channel)),
      role_(role),
      max_message_size_(max_message_size),
      queue_limit_(std::max<std::size_t>(std::size_t{64} << 20, 2 * max_message_size)),
      request_timer_(io) {
  channel_->on_drain([this] {
    for (auto& fn : std::exchange(writable_fns_, {})) call_user("on_writable", fn);
  });
}

uint64_t MessengerClient::send(Route route, int target_pid, std::string_view action,
                               std::string_view data, uint8_t flags, std::string_view key) {
  if (action.starts_with(messaging::kReservedPrefix) ||
      (!reserved_allowed() && (action.starts_with("schedule:") || action.starts_with("mq:")))) {
    throw MessengerError(fmt::format("action '{}' is reserved for the clutch runtime", action));
  }
  if (action.empty() || action.size() > ipc::kMaxActionLength) {
    throw MessengerError(fmt::format("action must be 1 to {} bytes long", ipc::kMaxActionLength));
  }
  if (data.size() > max_message_size_) {
    throw MessengerError(
        fmt::format("payload of {} bytes for '{}' is over max_message_size ({} bytes)", data.size(),
                    action, max_message_size_));
  }
  if (channel_->pending_output() + data.size() > queue_limit_) {
    throw MessengerError(fmt::format(
        "messenger queue full ({} bytes waiting for the master): wait for on_writable()",
        channel_->pending_output()));
  }
  if (channel_->closed()) throw MessengerError("the master is gone: cannot send");
  FrameHeader h;
  h.kind = FrameKind::kMessage;
  messaging::set_route(h, route);
  h.flags = flags;
  h.target_pid = target_pid;
  h.id = next_id_++;
  send_frame(h, action, data, key);
  return h.id;
}

void MessengerClient::send_frame(FrameHeader h, std::string_view action, std::string_view data,
                                 std::string_view key) {
  if (data.size() >= ipc::kSharedPayloadMin) {
    ipc::PayloadPool::Lent lent = payload_pool_.lend(data);
    if (lent.fd >= 0) {
      h.flags |= ipc::kFlagSharedPayload;
      // Counted as queued until the master says it took it (kPayloadTaken).
      channel_->attach_fd(lent.fd, data.size());
      channel_->send(h, action, ipc::encode_shared_ref(lent.seq, data.size()), key);
      return;
    }
    // Out of descriptors or memory for a memfd: the socket still carries it.
    spdlog::debug("large payload sent inline: no memfd ({})", std::strerror(errno));
  }
  channel_->send(h, action, data, key);
}

void MessengerClient::broadcast(std::string_view a, std::string_view d) {
  send(Route::kBroadcast, 0, a, d);
}
void MessengerClient::send_to_app(std::string_view a, std::string_view d) {
  send(Route::kApp, 0, a, d);
}
void MessengerClient::send_to_others(std::string_view a, std::string_view d) {
  send(Route::kOthers, 0, a, d);
}
void MessengerClient::send_to_agent(std::string_view a, std::string_view d) {
  send(Route::kAgent, 0, a, d);
}
void MessengerClient::send_random(std::string_view a, std::string_view d) {
  send(Route::kRandom, 0, a, d);
}
void MessengerClient::send_to(int pid, std::string_view a, std::string_view d) {
  if (pid != 0 && pid == master_pid) {
    throw MessengerError(fmt::format(
        "send_to({}): that is the master, which takes no messages (it runs no user code); use "
        "send_to_agent, send_to_app or a worker's pid",
        pid));
  }
  send(Route::kPid, pid, a, d);
}

void MessengerClient::send_random(std::string_view action, std::string_view data,
                                  std::function<void(const AckResult&)> on_ack) {
  uint64_t id = send(Route::kRandom, 0, action, data, ipc::kFlagWantAck);
  pending_acks_.emplace(id, std::move(on_ack));
}

void MessengerClient::send_random_once(std::string_view action, std::string_view data,
                                       std::string_view key,
                                       std::function<void(const AckResult&)> on_ack) {
  if (key.empty() || key.size() > ipc::kMaxKeyLength) {
    throw MessengerError(
        fmt::format("send_random_once: the key must be 1 to {} bytes long", ipc::kMaxKeyLength));
  }
  uint64_t id = send(Route::kRandom, 0, action, data, ipc::kFlagWantAck, key);
  pending_acks_.emplace(id, std::move(on_ack));
}

void MessengerClient::request(Target target, std::string_view action, std::string_view data,
                              std::chrono::milliseconds timeout,
                              std::function<void(const Reply&)> on_reply) {
  Route route = target.kind == Target::Kind::kAgent    ? Route::kAgent
                : target.kind == Target::Kind::kRandom ? Route::kRandom
                                                       : Route::kPid;
  uint64_t id = send(route, target.pid, action, data, ipc::kFlagRequest);
  auto at = asio::steady_timer::clock_type::now() + timeout;
  auto deadline = request_deadlines_.emplace(at, id);
  pending_requests_.emplace(
      id, PendingRequest{std::move(on_reply), std::string(action), timeout, deadline});
  if (!request_timer_armed_ || at < request_timer_at_) arm_request_timer(at);
}

void MessengerClient::arm_request_timer(asio::steady_timer::time_point at) {
  request_timer_armed_ = true;
  request_timer_at_ = at;
  request_timer_.expires_at(at);  // a wait already armed ends with operation_aborted
  request_timer_.async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    request_timer_armed_ = false;
    expire_requests();
  });
}

void MessengerClient::expire_requests() {
  auto now = asio::steady_timer::clock_type::now();
  // Bounded by what was due on entry: a callback may send requests of its own.
  for (std::size_t due = request_deadlines_.size(); due > 0; --due) {
    if (request_deadlines_.empty() || request_deadlines_.begin()->first > now) break;
    uint64_t id = request_deadlines_.begin()->second;
    const PendingRequest& pending = pending_requests_.at(id);
    Reply r;
    r.error =
        fmt::format("request '{}' timed out after {} ms", pending.action, pending.timeout.count());
    finish_request(id, std::move(r));
  }
  if (!request_deadlines_.empty()) {
    auto next = request_deadlines_.begin()->first;
    if (!request_timer_armed_ || next < request_timer_at_) arm_request_timer(next);
  }
}

void MessengerClient::finish_request(uint64_t id, Reply reply) {
  auto it = pending_requests_.find(id);
  if (it == pending_requests_.end()) return;
  auto fn = std::move(it->second.on_reply);
  request_deadlines_.erase(it->second.deadline);  // the timer, if it was the earliest, finds none
  pending_requests_.erase(it);
  call_user("request reply", fn, reply);
}

HandlerId MessengerClient::add_handler(std::string_view action, Handler handler, bool once) {
  if (!reserved_allowed() && (action.starts_with("schedule:") || action.starts_with("mq:"))) {
    throw MessengerError(
        fmt::format("action '{}' is reserved for clutch's schedules and queues: use app.schedule / "
                    "app.consume, or another name",
                    action));
  }
  HandlerId id = next_handler_id_++;
  auto it = handlers_.find(action);
  if (it == handlers_.end()) it = handlers_.emplace(std::string(action), Entries{}).first;
  it->second.push_back(std::make_unique<Entry>(Entry{id, std::move(handler), once}));
  return id;
}

HandlerId MessengerClient::on(std::string_view action, Handler handler) {
  return add_handler(action, std::move(handler), false);
}
HandlerId MessengerClient::once(std::string_view action, Handler handler) {
  return add_handler(action, std::move(handler), true);
}

void MessengerClient::off(std::string_view action) {
  if (auto it = handlers_.find(action); it != handlers_.end()) {
    for (auto& e : it->second) e->removed = true;
    sweep_removed();
  }
}

void MessengerClient::off(HandlerId id) {
  for (auto& [action, entries] : handlers_) {
    for (auto& e : entries) {
      if (e->id == id) e->removed = true;
    }
  }
  sweep_removed();
}

void MessengerClient::sweep_removed() {
  // A handler that is running (it may be the one removed) is not destroyed under itself: the
  // sweep waits for the outermost dispatch to end.
  if (dispatch_depth_ > 0) {
    sweep_pending_ = true;
    return;
  }
  sweep_pending_ = false;
  // Entries only, never an action's node: a cached lookup (last_entries_) stays valid.
  for (auto& [action, entries] : handlers_)
    std::erase_if(entries, [](const auto& e) { return e->removed; });
}

MessengerClient::Entries* MessengerClient::entries_for(std::string_view action) {
  // Most traffic is one action after another of the same name: compared, not hashed again.
  if (last_entries_ != nullptr && action == last_action_) return last_entries_;
  auto it = handlers_.find(action);
  if (it == handlers_.end()) return nullptr;
  last_action_.assign(action);
  last_entries_ = &it->second;
  return last_entries_;
}

void MessengerClient::send_control(std::string_view op, std::string_view payload) {
  FrameHeader h;
  h.kind = FrameKind::kControl;
  channel_->send(h, op, payload);
}

void MessengerClient::send_answer(bool is_request, uint64_t id, int to_pid, bool ok,
                                  std::string_view data) {
  if (channel_->closed()) return;
  std::string too_large;
  if (data.size() > max_message_size_) {
    // Checked like a send: the master would take an oversized frame for a broken child.
    too_large = fmt::format("{} of {} bytes is over max_message_size ({} bytes)",
                            ok ? "reply" : "error", data.size(), max_message_size_);
    spdlog::error("answer to pid {} not sent: {}", to_pid, too_large);
    ok = false;
    data = too_large;
  }
  FrameHeader h;
  h.kind = is_request ? FrameKind::kReply : FrameKind::kAck;
  h.flags = ok ? 0 : ipc::kFlagFailed;
  h.id = id;
  h.target_pid = to_pid;
  // An ack carries only the error, if any; a reply carries the data (a large one in a memfd).
  if (is_request && ok)
    send_frame(h, {}, data);
  else
    channel_->send(h, {}, (is_request || !ok) ? data : std::string_view{});
}

void MessengerClient::handle_shared(const ipc::FrameView& in) {
  const FrameHeader& h = in.header;
  ipc::SharedRef ref = ipc::read_shared_ref(in);
  ipc::PayloadMappings::View mapped = mappings_.view(in.fd, ref.size, max_message_size_);
  if (mapped.error.empty()) {
    ipc::FrameView frame = in;
    frame.payload = mapped.bytes;
    frame.header.flags &= ~ipc::kFlagSharedPayload;
    frame.header.payload_length = static_cast<uint32_t>(ref.size);
    frame.fd = -1;
    handle_frame(frame);
  } else {
    // Never dropped silently: whoever waits for it hears why.
    std::string why =
        fmt::format("large message from pid {} unreadable: {}", h.sender_pid, mapped.error);
    spdlog::error("{}", why);
    bool is_request = (h.flags & ipc::kFlagRequest) != 0;
    if (h.kind == FrameKind::kMessage && (is_request || (h.flags & ipc::kFlagWantAck)))
      send_answer(is_request, h.id, h.sender_pid, false, why);
    if (h.kind == FrameKind::kReply) finish_request(h.id, Reply{false, {}, why, {}});
  }
  mappings_.trim();
  // Handled, and its descriptor closed by the channel right after: the master may count these
  // bytes as gone from this process's queue (a kept mapping is the sender's pages, not a copy).
  send_control(messaging::kPayloadRead, messaging::payload_read_text(ref.token, ref.size));
}

void MessengerClient::handle_frame(const ipc::FrameView& frame) {
  if (frame.header.flags & ipc::kFlagSharedPayload) return handle_shared(frame);
  const FrameHeader& h = frame.header;
  switch (h.kind) {
    case FrameKind::kMessage:
      if (from_master(h)) {
        if (frame.action == messaging::kActionReady) {
          if (on_cluster_ready) on_cluster_ready();
        } else if (frame.action == messaging::kActionMembers) {
          apply_members(frame.payload);
        } else if (frame.action == messaging::kActionMembersDelta) {
          apply_member_changes(frame.payload);
          break;  // the runtime's own bookkeeping: no user handler sees it
        }
      }
      dispatch(frame);
      break;
    case FrameKind::kAck: {
      auto it = pending_acks_.find(h.id);
      if (it == pending_acks_.end()) return;
      auto fn = std::move(it->second);
      pending_acks_.erase(it);
      AckResult result;
      result.ok = (h.flags & ipc::kFlagFailed) == 0;
      result.error = std::string(frame.payload);
      // A failure the master reports itself means no handler ran: handled_by stays 0.
      result.handled_by = from_master(h) ? 0 : h.sender_pid;
      call_user("on_ack", fn, result);
      break;
    }
    case FrameKind::kReply: {
      Reply r;
      r.ok = (h.flags & ipc::kFlagFailed) == 0;
      (r.ok ? r.data : r.error) = std::string(frame.payload);
      r.from = Sender{sender_role(h), h.sender_pid};
      finish_request(h.id, std::move(r));
      break;
    }
    case FrameKind::kError: {
      if (auto it = pending_acks_.find(h.id); it != pending_acks_.end()) {
        auto fn = std::move(it->second);
        pending_acks_.erase(it);
        call_user("on_ack", fn, AckResult{false, std::string(frame.payload), 0});
      } else if (pending_requests_.count(h.id) != 0) {
        Reply r;
        r.error = std::string(frame.payload);
        finish_request(h.id, std::move(r));
      } else if (frame.action.empty()) {
        // About a request that already timed out here (its replier exited since): old news.
        spdlog::debug("late error for request {}: {}", h.id, frame.payload);
      } else if (error_fn_) {
        call_user("on_error", error_fn_,
                  DeliveryError{std::string(frame.action), std::string(frame.payload)});
      } else {
        spdlog::warn("message '{}' not delivered: {}", frame.action, frame.payload);
      }
      break;
    }
    case FrameKind::kControl:
      if (frame.action == messaging::kPayloadFree) {
        payload_pool_.give_back(messaging::parse_count(frame.payload));
      } else if (frame.action == messaging::kPayloadTaken) {
        channel_->release_held_bytes(messaging::parse_count(frame.payload));
      } else if (frame.action == messaging::kOpDrainOk) {
        if (on_drain_ok) on_drain_ok();
      } else if (on_master_control) {
        on_master_control(frame.action, frame.payload);
      }
      break;
  }
}

void MessengerClient::dispatch(const ipc::FrameView& frame) {
  const FrameHeader& h = frame.header;
  if (handled_counter != nullptr) handled_counter->inc();
  bool wants_ack = (h.flags & ipc::kFlagWantAck) != 0;
  bool is_request = (h.flags & ipc::kFlagRequest) != 0;
  std::shared_ptr<MessageState> state;
  if (wants_ack || is_request) {
    state = std::make_shared<MessageState>(weak_from_this(), is_request, h.id, h.sender_pid);
  }
  Message message(frame.action, frame.payload, Sender{sender_role(h), h.sender_pid}, wants_ack,
                  is_request, state);
  Entries* entries = entries_for(frame.action);
  if (entries == nullptr || entries->empty()) {
    if (state) {
      state->answer(false, fmt::format("no handler for '{}' in {} {}", frame.action,
                                       to_string(role_), getpid()));
    } else if (!frame.action.starts_with(messaging::kReservedPrefix) &&
               warned_unhandled_.emplace(std::string(frame.action), true).second) {
      spdlog::warn("no handler for message '{}' (further ones are not logged)", frame.action);
    }
    return;
  }
  std::string failure;
  bool failed = false;
  {
    // Entries stay alive while any dispatch runs (sweep_removed waits), so the loop holds plain
    // pointers; it indexes over a count taken now, as handlers may add or remove handlers.
    DispatchScope scope(*this);
    std::size_t count = entries->size();
    for (std::size_t i = 0; i < count && i < entries->size(); ++i) {
      Entry* entry = (*entries)[i].get();
      if (entry->removed) continue;
      if (entry->once) {
        entry->removed = true;
        sweep_pending_ = true;
      }
      try {
        entry->handler(message);
      } catch (const std::exception& e) {
        failed = true;
        failure = e.what();
      } catch (...) {
        failed = true;
        failure = "unknown exception";
      }
      if (failed && !state) {
        // Nobody to tell (a plain send): an uncaught exception, under the configured policy.
        uncaught(fmt::format("handler for '{}'", frame.action), failure);
      } else if (failed) {
        spdlog::error("handler for '{}' threw: {}", frame.action, failure);
      }
    }
  }
  if (state && !state->deferred) state->answer(!failed, failed ? std::string_view(failure) : "");
}

void MessengerClient::apply_member_changes(std::string_view text) {
  auto json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded()) return;
  std::vector<MemberEvent> events;
  for (int pid : json.value("left", std::vector<int>{})) {
    if (std::erase(workers_, pid) > 0) events.push_back({false, Role::kWorker, pid});
  }
  for (int pid : json.value("joined", std::vector<int>{})) {
    if (std::find(workers_.begin(), workers_.end(), pid) != workers_.end()) continue;
    workers_.push_back(pid);
    events.push_back({true, Role::kWorker, pid});
  }
  int agent = json.value("agent", 0);
  if (agent != agent_) {
    if (agent_ != 0) events.push_back({false, Role::kAgent, agent_});
    if (agent != 0) events.push_back({true, Role::kAgent, agent});
    agent_ = agent;
  }
  for (const auto& ev : events) {
    for (auto& fn : member_fns_) call_user("on_member", fn, ev);
  }
}

void MessengerClient::apply_members(std::string_view text) {
  auto json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded()) return;
  int agent = json.value("agent", 0);
  std::vector<int> workers = json.value("workers", std::vector<int>{});
  std::vector<MemberEvent> events;
  for (int pid : workers_) {
    if (std::find(workers.begin(), workers.end(), pid) == workers.end())
      events.push_back({false, Role::kWorker, pid});
  }
  for (int pid : workers) {
    if (std::find(workers_.begin(), workers_.end(), pid) == workers_.end())
      events.push_back({true, Role::kWorker, pid});
  }
  if (agent != agent_) {
    if (agent_ != 0) events.push_back({false, Role::kAgent, agent_});
    if (agent != 0) events.push_back({true, Role::kAgent, agent});
  }
  workers_ = std::move(workers);
  agent_ = agent;
  for (const auto& ev : events) {
    for (auto& fn : member_fns_) call_user("on_member", fn, ev);
  }
}

}  // namespace clutch::runtime
