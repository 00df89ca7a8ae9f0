#include "mq/amqp_link.hpp"

#include "mq/rabbitmq_api.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <map>
#include <random>
#include <stdexcept>
#include <thread>

namespace clutch::mq {
namespace {

constexpr amqp_channel_t kConsumeChannel = 1, kPublishChannel = 2, kBrowseChannel = 3;
constexpr timeval kIoTimeout{5, 0};  // connect, handshake and every RPC
constexpr std::chrono::milliseconds kMaxBackoff{5000};
constexpr std::chrono::seconds kCountsEvery{2};
constexpr std::chrono::seconds kConfirmTimeout{10};

// rabbitmq-c's amqp_empty_table and amqp_empty_bytes, which are data in the library, not API
// rabbitmq_api.hpp loads.
constexpr amqp_table_t kNoArguments{0, nullptr};
constexpr amqp_bytes_t kNoBytes{0, nullptr};

amqp_bytes_t bytes_of(std::string_view s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}
std::string text_of(amqp_bytes_t b) {
  return std::string(static_cast<const char*>(b.bytes), b.len);
}

int64_t int_value(const amqp_field_value_t& v, int64_t fallback) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_I8:
      return v.value.i8;
    case AMQP_FIELD_KIND_U8:
      return v.value.u8;
    case AMQP_FIELD_KIND_I16:
      return v.value.i16;
    case AMQP_FIELD_KIND_U16:
      return v.value.u16;
    case AMQP_FIELD_KIND_I32:
      return v.value.i32;
    case AMQP_FIELD_KIND_U32:
      return v.value.u32;
    case AMQP_FIELD_KIND_I64:
      return v.value.i64;
    case AMQP_FIELD_KIND_U64:
      return static_cast<int64_t>(v.value.u64);
    case AMQP_FIELD_KIND_TIMESTAMP:
      return static_cast<int64_t>(v.value.u64);
    default:
      return fallback;
  }
}

const amqp_field_value_t* header(const amqp_basic_properties_t& p, std::string_view key) {
  if (!(p._flags & AMQP_BASIC_HEADERS_FLAG)) return nullptr;
  for (int i = 0; i < p.headers.num_entries; ++i) {
    const amqp_table_entry_t& e = p.headers.entries[i];
    if (std::string_view(static_cast<const char*>(e.key.bytes), e.key.len) == key) return &e.value;
  }
  return nullptr;
}

// The basic properties a handler may read, as "amqp.NAME" headers, and written back on copies.
struct TextProperty {
  const char* name;
  amqp_flags_t flag;
  amqp_bytes_t amqp_basic_properties_t::*field;
};
constexpr TextProperty kTextProperties[] = {
    {"amqp.content_type", AMQP_BASIC_CONTENT_TYPE_FLAG, &amqp_basic_properties_t::content_type},
    {"amqp.content_encoding", AMQP_BASIC_CONTENT_ENCODING_FLAG,
     &amqp_basic_properties_t::content_encoding},
    {"amqp.correlation_id", AMQP_BASIC_CORRELATION_ID_FLAG,
     &amqp_basic_properties_t::correlation_id},
    {"amqp.reply_to", AMQP_BASIC_REPLY_TO_FLAG, &amqp_basic_properties_t::reply_to},
    {"amqp.type", AMQP_BASIC_TYPE_FLAG, &amqp_basic_properties_t::type},
    {"amqp.app_id", AMQP_BASIC_APP_ID_FLAG, &amqp_basic_properties_t::app_id},
};

bool is_clutch_header(std::string_view key) {
  return key.starts_with("x-clutch-");
}

// A header's value as text; false for kinds with no one-line text (tables, arrays, void).
bool value_text(const amqp_field_value_t& v, std::string& out) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
      out = text_of(v.value.bytes);
      return true;
    case AMQP_FIELD_KIND_BOOLEAN:
      out = v.value.boolean ? "true" : "false";
      return true;
    case AMQP_FIELD_KIND_F32:
      out = fmt::format("{}", v.value.f32);
      return true;
    case AMQP_FIELD_KIND_F64:
      out = fmt::format("{}", v.value.f64);
      return true;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
      out = std::to_string(v.value.u64);
      return true;
    case AMQP_FIELD_KIND_I8:
    case AMQP_FIELD_KIND_U8:
    case AMQP_FIELD_KIND_I16:
    case AMQP_FIELD_KIND_U16:
    case AMQP_FIELD_KIND_I32:
    case AMQP_FIELD_KIND_U32:
    case AMQP_FIELD_KIND_I64:
      out = std::to_string(int_value(v, 0));
      return true;
    default:
      return false;
  }
}

// QueueMessage::headers of a message: its text properties, then its headers table (clutch's
// own x-clutch-* bookkeeping left out).
QueueHeaders headers_of(const amqp_basic_properties_t& p) {
  QueueHeaders out;
  for (const TextProperty& t : kTextProperties)
    if (p._flags & t.flag) out.emplace_back(t.name, text_of(p.*t.field));
  if (!(p._flags & AMQP_BASIC_HEADERS_FLAG)) return out;
  std::string value;
  for (int i = 0; i < p.headers.num_entries; ++i) {
    const amqp_table_entry_t& e = p.headers.entries[i];
    std::string key = text_of(e.key);
    if (!is_clutch_header(key) && value_text(e.value, value)) out.emplace_back(key, value);
  }
  return out;
}

int attempts_of(const amqp_basic_properties_t& p) {
  const amqp_field_value_t* v = header(p, kAttemptsHeader);
  int64_t n = v ? int_value(*v, 0) : 0;
  return n < 0 ? 0 : static_cast<int>(std::min<int64_t>(n, 1'000'000));
}

std::string describe(const amqp_rpc_reply_t& r) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return "ok";
    case AMQP_RESPONSE_NONE:
      return "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return rabbitmq().amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto* c = static_cast<amqp_connection_close_t*>(r.reply.decoded);
        return fmt::format("the broker closed the connection: {} {}", c->reply_code,
                           text_of(c->reply_text));
      }
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto* c = static_cast<amqp_channel_close_t*>(r.reply.decoded);
        return fmt::format("the broker closed the channel: {} {}", c->reply_code,
                           text_of(c->reply_text));
      }
      return fmt::format("the broker answered method {:#x}", r.reply.id);
  }
  return "unknown reply";
}

}  // namespace

// ---- the thread's side ----

struct AmqpSession::State {
  amqp_connection_state_t conn = nullptr;
  uint64_t next_publish_seq = 1;  // confirm mode numbers publications from 1 per channel
  std::map<uint64_t, std::function<void(bool)>> confirms;
  std::chrono::steady_clock::time_point next_counts{};
};

namespace {

void check(amqp_connection_state_t conn, const char* doing) {
  amqp_rpc_reply_t r = rabbitmq().amqp_get_rpc_reply(conn);
  if (r.reply_type != AMQP_RESPONSE_NORMAL)
    throw std::runtime_error(fmt::format("{}: {}", doing, describe(r)));
}

void check_status(int status, const char* doing) {
  if (status != AMQP_STATUS_OK)
    throw std::runtime_error(fmt::format("{}: {}", doing, rabbitmq().amqp_error_string2(status)));
}

// queue.declare on the publish channel; passive first, so a queue the operator declared with
// arguments of their own (quorum, TTL) is used as it is. Returns the ready count.
uint32_t declare(amqp_connection_state_t conn, const std::string& queue, bool create) {
  amqp_queue_declare_ok_t* ok = rabbitmq().amqp_queue_declare(
      conn, kPublishChannel, bytes_of(queue), 1, 0, 0, 0, kNoArguments);
  if (ok != nullptr) return ok->message_count;
  amqp_rpc_reply_t r = rabbitmq().amqp_get_rpc_reply(conn);
  bool not_found = r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
                   r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
                   static_cast<amqp_channel_close_t*>(r.reply.decoded)->reply_code == 404;
  if (!not_found || !create)
    throw std::runtime_error(fmt::format("declaring queue '{}': {}", queue, describe(r)));
  // The broker closed the channel over the 404: acknowledge, reopen, create the queue durable.
  amqp_channel_close_ok_t close_ok{};
  check_status(
      rabbitmq().amqp_send_method(conn, kPublishChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok),
      "closing the channel");
  rabbitmq().amqp_channel_open(conn, kPublishChannel);
  check(conn, "reopening the publish channel");
  ok = rabbitmq().amqp_queue_declare(conn, kPublishChannel, bytes_of(queue), 0, 1, 0, 0,
                                     kNoArguments);
  if (ok == nullptr) check(conn, "creating the queue");
  return ok->message_count;
}

}  // namespace

int AmqpSession::socket_fd() const {
  return rabbitmq().amqp_get_sockfd(state_->conn);
}

bool AmqpSession::has_buffered() const {
  return rabbitmq().amqp_data_in_buffer(state_->conn) ||
         rabbitmq().amqp_frames_enqueued(state_->conn);
}

bool AmqpSession::open() {
  const AmqpUrl& url = link_.url_;
  auto st = std::make_shared<State>();
  st->conn = rabbitmq().amqp_new_connection();
  state_ = st;
  try {
    amqp_socket_t* socket = rabbitmq().amqp_tcp_socket_new(st->conn);
    if (socket == nullptr) throw std::runtime_error("cannot create a socket");
    check_status(
        rabbitmq().amqp_socket_open_noblock(socket, url.host.c_str(), url.port, &kIoTimeout),
        "connecting");
    rabbitmq().amqp_set_handshake_timeout(st->conn, &kIoTimeout);
    rabbitmq().amqp_set_rpc_timeout(st->conn, &kIoTimeout);
    amqp_rpc_reply_t login =
        rabbitmq().amqp_login(st->conn, url.vhost.c_str(), 0, 131072, url.heartbeat_s,
                              AMQP_SASL_METHOD_PLAIN, url.user.c_str(), url.password.c_str());
    if (login.reply_type != AMQP_RESPONSE_NORMAL)
      throw std::runtime_error(fmt::format("logging in as '{}' to vhost '{}': {}", url.user,
                                           url.vhost, describe(login)));
    for (amqp_channel_t ch : {kConsumeChannel, kPublishChannel}) {
      rabbitmq().amqp_channel_open(st->conn, ch);
      check(st->conn, "opening a channel");
    }
    link_.ready_count_ = declare(st->conn, url.queue, true);
    link_.dead_count_ = declare(st->conn, url.dead_queue, true);
    rabbitmq().amqp_confirm_select(st->conn, kPublishChannel);
    check(st->conn, "selecting publisher confirms");
    consuming_ = false;
    if (link_.consume_) start_consuming();
  } catch (const std::exception& e) {
    link_.log(true, fmt::format("cannot open {}:{}: {}", url.host, url.port, e.what()));
    abandon();
    return false;
  }
  generation_ = link_.generation_.load() + 1;
  st->next_counts = std::chrono::steady_clock::now() + kCountsEvery;
  return true;
}

void AmqpSession::start_consuming() {
  const AmqpUrl& url = link_.url_;
  rabbitmq().amqp_basic_qos(state_->conn, kConsumeChannel, 0, static_cast<uint16_t>(url.prefetch),
                            0);
  check(state_->conn, "setting the prefetch");
  rabbitmq().amqp_basic_consume(state_->conn, kConsumeChannel, bytes_of(url.queue), kNoBytes, 0, 0,
                                0, kNoArguments);
  check(state_->conn, fmt::format("consuming queue '{}'", url.queue).c_str());
  consuming_ = true;
}

void AmqpSession::close() {
  if (!state_) return;
  rabbitmq().amqp_connection_close(state_->conn, AMQP_REPLY_SUCCESS);  // bounded by the RPC timeout
  abandon();
}

void AmqpSession::abandon() {
  if (!state_) return;
  std::shared_ptr<State> st = std::move(state_);
  unsettled_.clear();  // the broker requeues them all
  acked_.clear();
  rabbitmq().amqp_destroy_connection(st->conn);
  st->conn = nullptr;
  // Publications the broker never confirmed: their originals stay unacknowledged, and the broker
  // redelivers them to the next connection.
  for (auto& [seq, confirmed] : st->confirms) confirmed(false);
}

void AmqpSession::ack(uint64_t tag) {
  if (unsettled_.erase(tag) == 0) return;
  acked_.insert(tag);
}

void AmqpSession::flush_acks() {
  if (acked_.empty() || !state_) return;
  uint64_t lowest_unsettled = unsettled_.empty() ? UINT64_MAX : *unsettled_.begin();
  // Every acked tag below the lowest unsettled one: one ack with `multiple` covers them all.
  auto end = acked_.lower_bound(lowest_unsettled);
  if (end != acked_.begin()) {
    check_status(rabbitmq().amqp_basic_ack(state_->conn, kConsumeChannel, *std::prev(end), 1),
                 "acknowledging");
    acked_.erase(acked_.begin(), end);
  }
  // The rest (above a slower message) go one by one, now: holding them back even 5 ms cut
  // throughput by a third, since the broker refills its prefetch window only on acks.
  for (uint64_t tag : acked_)
    check_status(rabbitmq().amqp_basic_ack(state_->conn, kConsumeChannel, tag, 0), "acknowledging");
  acked_.clear();
}

void AmqpSession::reject(uint64_t tag, bool requeue) {
  unsettled_.erase(tag);
  check_status(rabbitmq().amqp_basic_reject(state_->conn, kConsumeChannel, tag, requeue ? 1 : 0),
               "rejecting");
}

void AmqpSession::publish(const AmqpPublication& p, std::function<void(bool)> confirmed) {
  amqp_basic_properties_t props{};
  std::vector<amqp_table_entry_t> entries(3 + p.headers.size());
  int n = 0;
  // The message's own headers and properties go on every copy (retries, dead letters,
  // requeues); table values go back as text (QueueMessage::headers holds text).
  for (const auto& [key, value] : p.headers) {
    const TextProperty* property = nullptr;
    for (const TextProperty& t : kTextProperties)
      if (key == t.name) property = &t;
    if (property != nullptr) {
      props._flags |= property->flag;
      props.*property->field = bytes_of(value);
    } else if (!is_clutch_header(key)) {
      entries[n].key = bytes_of(key);
      entries[n].value.kind = AMQP_FIELD_KIND_UTF8;
      entries[n++].value.value.bytes = bytes_of(value);
    }
  }
  entries[n].key = bytes_of(kAttemptsHeader);
  entries[n].value.kind = AMQP_FIELD_KIND_I64;
  entries[n++].value.value.i64 = p.attempts;
  if (!p.error.empty()) {
    entries[n].key = bytes_of(kErrorHeader);
    entries[n].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[n++].value.value.bytes = bytes_of(p.error);
    entries[n].key = bytes_of(kFailedAtHeader);
    entries[n].value.kind = AMQP_FIELD_KIND_I64;
    entries[n++].value.value.i64 = p.failed_at_ms;
  }
  props._flags |=
      AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
  props.delivery_mode = 2;  // persistent
  props.message_id = bytes_of(p.message_id);
  props.headers = amqp_table_t{n, entries.data()};
  check_status(rabbitmq().amqp_basic_publish(state_->conn, kPublishChannel, kNoBytes,
                                             bytes_of(p.queue), 0, 0, &props, bytes_of(p.body)),
               "publishing");
  state_->confirms.emplace(state_->next_publish_seq++, std::move(confirmed));
}

void AmqpSession::publish_confirmed(const AmqpPublication* p, std::size_t n) {
  struct Tally {
    std::size_t waiting = 0, refused = 0;
  };
  auto tally = std::make_shared<Tally>();
  tally->waiting = n;
  for (std::size_t i = 0; i < n; ++i) {
    publish(p[i], [tally](bool ok) {
      --tally->waiting;
      tally->refused += ok ? 0 : 1;
    });
  }
  auto deadline = std::chrono::steady_clock::now() + kConfirmTimeout;
  while (tally->waiting > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("the broker did not confirm a publication");
    pump(static_cast<int>(std::min<int64_t>(left.count(), 200)));
  }
  if (tally->refused > 0)
    throw std::runtime_error(
        fmt::format("the broker refused {} publication(s) (basic.nack)", tally->refused));
}

void AmqpSession::pump(int timeout_ms) {
  // Bounded: a broker that floods us still lets the thread run its commands between batches.
  for (int i = 0; i < 4096 && state_; ++i) {
    rabbitmq().amqp_maybe_release_buffers(state_->conn);
    int wait_ms = i == 0 ? timeout_ms : 0;
    timeval tv{wait_ms / 1000, (wait_ms % 1000) * 1000};
    amqp_envelope_t env;
    amqp_rpc_reply_t r = rabbitmq().amqp_consume_message(state_->conn, &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
      const amqp_basic_properties_t& p = env.message.properties;
      AmqpDelivery d;
      d.generation = generation_;
      d.tag = env.delivery_tag;
      unsettled_.insert(env.delivery_tag);
      d.message.body = text_of(env.message.body);
      d.message.attempts = attempts_of(p);
      d.message.headers = headers_of(p);
      // The publisher's message id, stable across redeliveries (the master's once-only key);
      // without one, the delivery's own name, unique to this link.
      d.named_by_publisher = (p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) && p.message_id.len > 0;
      d.message.id = d.named_by_publisher ? text_of(p.message_id)
                                          : fmt::format("{}.{}.{}", link_.delivery_prefix_,
                                                        generation_, env.delivery_tag);
      rabbitmq().amqp_destroy_envelope(&env);
      std::lock_guard lock(link_.mutex_);
      link_.deliveries_.push_back(std::move(d));
      if (link_.caller_waiting_ && link_.wake_) {
        link_.caller_waiting_ = false;
        link_.wake_();  // under the lock: stop() clears it under the lock too
      }
      continue;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
      if (r.library_error == AMQP_STATUS_TIMEOUT) return;
      if (r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        handle_frame();
        continue;
      }
    }
    throw std::runtime_error(fmt::format("receiving: {}", describe(r)));
  }
}

void AmqpSession::handle_frame() {
  amqp_frame_t frame;
  timeval zero{0, 0};
  int rc = rabbitmq().amqp_simple_wait_frame_noblock(state_->conn, &frame, &zero);
  if (rc == AMQP_STATUS_TIMEOUT) return;
  check_status(rc, "receiving");
  if (frame.frame_type != AMQP_FRAME_METHOD) return;
  auto settle = [&](uint64_t tag, bool multiple, bool ok) {
    auto& confirms = state_->confirms;
    auto end = multiple ? confirms.upper_bound(tag) : confirms.find(tag);
    if (!multiple && end != confirms.end()) end = std::next(end);
    auto begin = multiple ? confirms.begin() : confirms.find(tag);
    if (begin == confirms.end()) return;
    std::vector<std::function<void(bool)>> done;
    for (auto it = begin; it != end; ++it) done.push_back(std::move(it->second));
    confirms.erase(begin, end);
    for (auto& confirmed : done) confirmed(ok);
  };
  void* decoded = frame.payload.method.decoded;
  switch (frame.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
      auto* a = static_cast<amqp_basic_ack_t*>(decoded);
      if (frame.channel == kPublishChannel) settle(a->delivery_tag, a->multiple, true);
      return;
    }
    case AMQP_BASIC_NACK_METHOD: {
      auto* a = static_cast<amqp_basic_nack_t*>(decoded);
      if (frame.channel == kPublishChannel) settle(a->delivery_tag, a->multiple, false);
      return;
    }
    case AMQP_BASIC_RETURN_METHOD: {  // not sent for our publications (never mandatory)
      amqp_message_t m;
      amqp_rpc_reply_t r = rabbitmq().amqp_read_message(state_->conn, frame.channel, &m, 0);
      if (r.reply_type == AMQP_RESPONSE_NORMAL) rabbitmq().amqp_destroy_message(&m);
      return;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      auto* c = static_cast<amqp_channel_close_t*>(decoded);
      std::string why = fmt::format("the broker closed channel {}: {} {}", frame.channel,
                                    c->reply_code, text_of(c->reply_text));
      amqp_channel_close_ok_t ok{};
      rabbitmq().amqp_send_method(state_->conn, frame.channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
      throw std::runtime_error(why);
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
      auto* c = static_cast<amqp_connection_close_t*>(decoded);
      std::string why = fmt::format("the broker closed the connection: {} {}", c->reply_code,
                                    text_of(c->reply_text));
      amqp_connection_close_ok_t ok{};
      rabbitmq().amqp_send_method(state_->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
      throw std::runtime_error(why);
    }
    case AMQP_BASIC_CANCEL_METHOD:
      throw std::runtime_error("the broker cancelled the consumer (was the queue deleted?)");
    default:
      return;
  }
}

void AmqpSession::refresh_counts() {
  auto now = std::chrono::steady_clock::now();
  if (now < state_->next_counts) return;
  state_->next_counts = now + kCountsEvery;
  link_.ready_count_ = declare(state_->conn, link_.url_.queue, false);
  link_.dead_count_ = declare(state_->conn, link_.url_.dead_queue, false);
}

void AmqpSession::browse_dead(std::size_t max, const std::function<bool(const Browsed&)>& visit) {
  amqp_connection_state_t conn = state_->conn;
  rabbitmq().amqp_channel_open(conn, kBrowseChannel);
  check(conn, "opening the browse channel");
  for (std::size_t seen = 0; seen < max; ++seen) {
    amqp_rpc_reply_t r =
        rabbitmq().amqp_basic_get(conn, kBrowseChannel, bytes_of(link_.url_.dead_queue), 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
      throw std::runtime_error(fmt::format("reading the dead letters: {}", describe(r)));
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) break;
    uint64_t tag = static_cast<amqp_basic_get_ok_t*>(r.reply.decoded)->delivery_tag;
    amqp_message_t m;
    r = rabbitmq().amqp_read_message(conn, kBrowseChannel, &m, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
      throw std::runtime_error(fmt::format("reading a dead letter: {}", describe(r)));
    Browsed b;
    b.body = text_of(m.body);
    b.message_id =
        (m.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) ? text_of(m.properties.message_id) : "";
    b.attempts = attempts_of(m.properties);
    b.headers = headers_of(m.properties);
    if (const amqp_field_value_t* e = header(m.properties, kErrorHeader);
        e && (e->kind == AMQP_FIELD_KIND_UTF8 || e->kind == AMQP_FIELD_KIND_BYTES))
      b.error = text_of(e->value.bytes);
    if (const amqp_field_value_t* t = header(m.properties, kFailedAtHeader))
      b.failed_at_ms = int_value(*t, 0);
    rabbitmq().amqp_destroy_message(&m);
    if (visit(b))
      check_status(rabbitmq().amqp_basic_ack(conn, kBrowseChannel, tag, 0),
                   "removing a dead letter");
  }
  // What was read and not removed goes back to the queue, in its place.
  rabbitmq().amqp_channel_close(conn, kBrowseChannel, AMQP_REPLY_SUCCESS);
  check(conn, "closing the browse channel");
}

std::size_t AmqpSession::purge_dead() {
  amqp_queue_purge_ok_t* ok =
      rabbitmq().amqp_queue_purge(state_->conn, kPublishChannel, bytes_of(link_.url_.dead_queue));
  if (ok == nullptr) check(state_->conn, "purging the dead letters");
  return ok->message_count;
}

// ---- the caller's side ----

std::shared_ptr<AmqpLink> AmqpLink::start(AmqpUrl url) {
  rabbitmq();  // loaded here, so a missing library fails the start with its reason
  std::shared_ptr<AmqpLink> link(new AmqpLink(std::move(url)));
  std::thread([link] { link->run(); }).detach();
  return link;
}

AmqpLink::AmqpLink(AmqpUrl url) : url_(std::move(url)) {
  std::random_device random;
  delivery_prefix_ = fmt::format("{:08x}{:08x}", random(), random());
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error("mq: eventfd failed");
}

AmqpLink::~AmqpLink() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void AmqpLink::set_waker(std::function<void()> wake) {
  std::lock_guard lock(mutex_);
  wake_ = std::move(wake);
}

void AmqpLink::stop(std::chrono::milliseconds timeout) {
  stopping_ = true;
  wake();
  std::unique_lock lock(mutex_);
  wake_ = nullptr;
  drained_.wait_for(lock, timeout, [&] { return finished_; });
}

void AmqpLink::wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void AmqpLink::post(Command command) {
  {
    std::lock_guard lock(mutex_);
    commands_.push_back(std::move(command));
    ++posted_;
  }
  wake();
}

std::vector<AmqpDelivery> AmqpLink::take_deliveries(std::size_t max) {
  if (!consume_.exchange(true)) wake();
  std::vector<AmqpDelivery> out;
  std::lock_guard lock(mutex_);
  while (!deliveries_.empty() && out.size() < max) {
    out.push_back(std::move(deliveries_.front()));
    deliveries_.pop_front();
  }
  caller_waiting_ = out.empty();
  return out;
}

std::vector<std::pair<bool, std::string>> AmqpLink::take_log() {
  std::lock_guard lock(mutex_);
  return std::exchange(log_, {});
}

void AmqpLink::log(bool error, std::string text) {
  std::lock_guard lock(mutex_);
  if (log_.size() < 100) log_.emplace_back(error, std::move(text));
}

bool AmqpLink::drain(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  uint64_t target = posted_;
  wake();
  return drained_.wait_for(lock, timeout, [&] { return ran_ >= target || finished_; });
}

void AmqpLink::run_commands(AmqpSession& session) {
  for (;;) {
    Command command;
    {
      std::lock_guard lock(mutex_);
      if (commands_.empty()) return;
      command = std::move(commands_.front());
      commands_.pop_front();
    }
    struct Counted {
      AmqpLink& link;
      ~Counted() {
        std::lock_guard lock(link.mutex_);
        ++link.ran_;
        link.drained_.notify_all();
      }
    } counted{*this};
    command(session);
  }
}

void AmqpLink::run() {
  AmqpSession session(*this);
  std::chrono::milliseconds backoff{100};
  bool ever_connected = false;
  while (!stopping_) {
    if (!session.state_) {
      if (!session.open()) {
        log(true, fmt::format("AMQP {}:{} unreachable; retrying in {} ms", url_.host, url_.port,
                              backoff.count()));
        pollfd wake{wake_fd_, POLLIN, 0};
        ::poll(&wake, 1, static_cast<int>(backoff.count()));
        backoff = std::min(backoff * 2, kMaxBackoff);
        continue;
      }
      backoff = std::chrono::milliseconds(100);
      generation_ = session.generation_;
      connected_ = true;
      log(false,
          fmt::format("AMQP {}connected to {}:{} (queue '{}', prefetch {})",
                      ever_connected ? "re" : "", url_.host, url_.port, url_.queue, url_.prefetch));
      ever_connected = true;
    }
    try {
      if (consume_ && !session.consuming_) session.start_consuming();
      run_commands(session);
      if (stopping_) break;
      pollfd fds[2] = {{session.socket_fd(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      session.flush_acks();
      ::poll(fds, 2, session.has_buffered() ? 0 : 200);
      if (fds[1].revents & POLLIN) {
        uint64_t count;
        [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof count);
      }
      session.pump(0);
      session.flush_acks();
      session.refresh_counts();
    } catch (const std::exception& e) {
      log(true, fmt::format("AMQP connection lost ({}); reconnecting", e.what()));
      session.abandon();
      connected_ = false;
      // The broker redelivers what this connection held; deliveries not yet taken are dropped.
      std::lock_guard lock(mutex_);
      deliveries_.clear();
    }
  }
  // Stopping: what is queued (acks, mostly) goes out if the connection is up, then it closes.
  if (session.state_) {
    try {
      run_commands(session);
      session.flush_acks();
      session.close();
    } catch (const std::exception&) {
      session.abandon();
    }
  }
  connected_ = false;
  std::lock_guard lock(mutex_);
  ran_ = posted_;
  finished_ = true;
  drained_.notify_all();
}

}  // namespace clutch::mq
