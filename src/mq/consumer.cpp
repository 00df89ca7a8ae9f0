#include "mq/consumer.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>

#include "mq/inbox_handler.hpp"
#include "mq/off_loop_source.hpp"
#include "mq/postgres_url.hpp"
#include "mq/url_query.hpp"
#include "runtime/metrics_access.hpp"
#include "runtime/reserved_scope.hpp"

namespace clutch::mq {
std::string action_of(const ConsumeOptions& o) {
  return "mq:" + o.name;
}

namespace {

// The messenger's limit on an idempotency key (ipc::kMaxKeyLength); a consumer whose name and
// message ids make longer keys sends without one.
constexpr std::size_t kMaxKeyLength = 254;

// Redis and PostgreSQL are spoken through blocking calls (hiredis's, libpq's): they run on a
// thread of their own, so that a server that hangs cannot stall the agent's loop (AMQP has its
// own I/O thread; SQLite is a local file).
std::unique_ptr<MessageSource> open_for_the_agent(const ConsumeOptions& options) {
  auto source = open_message_source(options.url, options.visibility_timeout);
  if (options.url.rfind("redis://", 0) == 0 || is_postgres_url(options.url))
    return run_off_loop(std::move(source));
  return source;
}

// Pulls from the source while the workers have room, hands each message to one worker and
// settles it with the source when the worker's acknowledgement comes back.
class Consumer : public std::enable_shared_from_this<Consumer> {
 public:
  Consumer(Context& ctx, ConsumeOptions options)
      : ctx_(ctx), options_(std::move(options)), source_(open_for_the_agent(options_)) {
    using A = detail::MetricsAccess;
    MetricLabels labels{{"consumer", options_.name}};
    fetched_ = &A::counter(ctx_.metrics(), "clutch_mq_fetched_total",
                           "Messages the agent fetched from the queue.", labels);
    handled_ = &A::counter(ctx_.metrics(), "clutch_mq_handled_total",
                           "Messages handled and acknowledged to the queue.", labels);
    failed_ = &A::counter(ctx_.metrics(), "clutch_mq_failed_total",
                          "Handler failures (each retried, or dead-lettered at the last).", labels);
    dead_ = &A::counter(ctx_.metrics(), "clutch_mq_dead_lettered_total",
                        "Messages moved to the dead letters.", labels);
    in_flight_gauge_ = &A::gauge(ctx_.metrics(), "clutch_mq_in_flight",
                                 "Messages handed to workers and not yet settled.", labels);
    pending_gauge_ = &A::gauge(ctx_.metrics(), "clutch_mq_pending",
                               "Messages in the queue not yet acknowledged (sampled).", labels);
    lag_gauge_ =
        &A::gauge(ctx_.metrics(), "clutch_mq_oldest_age_seconds",
                  "Age of the oldest message not yet acknowledged (sampled; 0: none).", labels);
    dead_gauge_ = &A::gauge(ctx_.metrics(), "clutch_mq_dead_letters",
                            "Messages in the dead letters (sampled).", labels);
  }

  const std::string& name() const { return options_.name; }

  // For clutchctl queue: what the consumer knows, and what the queue says.
  nlohmann::json stats() {
    sample_queue();
    double rate = 0;
    if (rate_samples_.size() >= 2) {
      auto& [t0, n0] = rate_samples_.front();
      auto& [t1, n1] = rate_samples_.back();
      double seconds = std::chrono::duration<double>(t1 - t0).count();
      if (seconds > 0) rate = (n1 - n0) / seconds;
    }
    return {{"name", options_.name},
            {"url", redact_url(options_.url)},
            {"in_flight", in_flight_},
            {"pending", pending_},
            {"dead_letters", dead_letters_},
            {"oldest_age_ms", oldest_age_ms_},
            {"fetched", fetched_->value()},
            {"handled", handled_->value()},
            {"failed", failed_->value()},
            {"dead_lettered", dead_->value()},
            {"rate_per_s", rate},
            {"error", last_error_}};
  }
  std::vector<DeadLetter> list_dead(std::size_t max) { return source_->list_dead(max); }
  std::size_t requeue_dead(const std::vector<std::string>& ids) {
    std::size_t n = source_->requeue_dead(ids);
    spdlog::info("mq {}: {} dead letter(s) requeued by an operator", options_.name, n);
    ctx_.post([self = shared_from_this()] { self->pump(); });
    return n;
  }
  std::size_t purge_dead(const std::vector<std::string>& ids) {
    std::size_t n = source_->purge_dead(ids);
    spdlog::warn("mq {}: {} dead letter(s) purged by an operator", options_.name, n);
    return n;
  }

  void start() {
    source_->avoid_blocking();
    if (!options_.inbox.empty()) {
      // The workers' inbox recognises a redelivery by the queue's identity and the message's id.
      source_->require_stable_ids();
    }
    // Unique per cluster instance (its master), stable across this agent's restarts under it.
    source_->name_instance(std::to_string(ctx_.master_pid()));
    source_->recover_in_flight();
    // Sources that read on their own thread say when messages arrive: fetch then, not at the
    // next poll. Context::post may be called from any thread.
    std::weak_ptr<Consumer> weak = shared_from_this();
    Context* ctx = &ctx_;
    source_->set_waker([weak, ctx] {
      ctx->post([weak] {
        if (auto self = weak.lock()) self->pump();
      });
    });
    auto self = shared_from_this();
    // Once a second: the handled count for the rate; every 5 s: what the queue holds, which asks
    // the broker (kept rare while those calls block the loop).
    ctx_.set_interval(std::chrono::seconds(1), [self] {
      self->rate_samples_.emplace_back(std::chrono::steady_clock::now(), self->handled_->value());
      if (self->rate_samples_.size() > 11) self->rate_samples_.pop_front();
      if (++self->ticks_ % 5 == 1) self->sample_queue();
      // Liveness for the other instances, and taking over what dead ones left (Redis).
      self->guard_source("keeping alive", [&] { self->source_->keep_alive(); });
    });
    ctx_.on_ready([self] { self->pump(); });
    ctx_.on_stop([self](std::function<void()> done) {
      self->stopping_ = true;
      // The workers stopped first, so every ack is in; none may wait for a read that won't come.
      self->flush_acks();
      self->release_inbox_waiting();
      try {
        self->source_->close();
      } catch (const std::exception& e) {
        spdlog::error("mq {}: stopping: {}", self->options_.name, e.what());
      }
      done();
    });
  }

 private:
  void pump() {
    if (stopping_ || pumping_ || waiting_writable_) return;
    pumping_ = true;
    // The window follows the live worker count; it is taken once per pump, not per message
    // (workers() copies the membership list).
    window_ = options_.max_in_flight_per_worker *
              std::max<std::size_t>(1, ctx_.messenger().workers().size());
    try {
      while (in_flight_ < window_) {
        std::vector<QueueMessage> batch =
            source_->fetch(std::min<std::size_t>(window_ - in_flight_, 256));
        fetched_->inc(static_cast<double>(batch.size()));
        if (batch.empty()) {
          source_->flush();  // the queue is dry: no read is coming soon to carry the acks
          break;
        }
        for (std::size_t i = 0; i < batch.size(); ++i) {
          if (!dispatch(std::move(batch[i]))) {
            // The messenger took no more: the rest of the batch goes back to the queue.
            for (std::size_t j = i + 1; j < batch.size(); ++j) release(batch[j]);
            break;
          }
        }
        if (waiting_writable_) break;
      }
    } catch (const QueueUnavailable&) {
      // Reconnecting; the source logs its attempts. Poll again later.
    } catch (const std::exception& e) {
      // Logged when it changes (or every 10 s), not on every poll of a broker that is down.
      auto now = std::chrono::steady_clock::now();
      if (e.what() != last_error_ || now - last_error_at_ > std::chrono::seconds(10)) {
        spdlog::error("mq {}: {} (retrying)", options_.name, e.what());
        last_error_ = e.what();
        last_error_at_ = now;
      }
    }
    pumping_ = false;
    if (in_flight_ < window_ && !waiting_writable_) schedule_poll();
  }

  void sample_queue() {
    if (stopping_) return;
    try {
      pending_ = source_->pending();
      dead_letters_ = source_->dead_letters();
      oldest_age_ms_ = source_->oldest_age_ms();
      pending_gauge_->set(static_cast<double>(pending_));
      dead_gauge_->set(static_cast<double>(dead_letters_));
      lag_gauge_->set(oldest_age_ms_ > 0 ? static_cast<double>(oldest_age_ms_) / 1000 : 0);
    } catch (const std::exception&) {
      // The broker is away: the pump logs that; the figures keep their last values.
    }
  }

  void schedule_poll() {
    if (poll_scheduled_ || stopping_) return;
    poll_scheduled_ = true;
    auto self = shared_from_this();
    ctx_.set_timeout(options_.poll_interval, [self] {
      self->poll_scheduled_ = false;
      self->pump();
    });
  }

  // Hands one message to a worker. False when the messenger refused it (its queue to the master
  // is full, or the master is gone): the message went back to the queue and pumping waits.
  bool dispatch(QueueMessage m) {
    if (options_.inbox.empty()) {
      encode_delivery(m, payload_);  // into one reused buffer: the messenger copies it out
    } else {
      // Asked at the first message, not at the start: PostgreSQL's is read from the table, which
      // a queue that was down at the start could not tell.
      if (inbox_source_.empty()) inbox_source_ = source_->identity();
      if (inbox_source_.empty()) inbox_source_ = redact_url(options_.url);
      // Carried to the worker, not kept: a retry or a dead letter must not write it back.
      m.headers.emplace_back(kInboxSourceHeader, inbox_source_);
      encode_delivery(m, payload_);
      m.headers.pop_back();
    }
    if (payload_.size() > ctx_.config().max_message_size) {
      // It can never be delivered: say so once and keep it, rather than fetch it forever.
      std::string why = fmt::format("message of {} bytes is over max_message_size ({} bytes)",
                                    payload_.size(), ctx_.config().max_message_size);
      spdlog::error("mq {}: message {} dead-lettered: {}", options_.name, m.id, why);
      guard_source("dead-lettering", [&] { source_->dead_letter(m, why); });
      dead_->inc();
      return true;
    }
    if (options_.naive) {
      // The seed's bug on purpose: every worker runs the callback.
      try {
        detail::ReservedScope reserved(ctx_.messenger());
        ctx_.messenger().send_to_app(action_, payload_);
      } catch (const MessengerError& e) {
        return refused(m, e);
      }
      source_->ack(m);
      return true;
    }
    // The message lives here until its ack: if the send throws it is still ours to release.
    auto held = std::make_shared<QueueMessage>(std::move(m));
    auto self = shared_from_this();
    // Keyed by the queue's own id: if this agent dies and its successor fetches the message
    // again while a worker still has it (or just handled it), the master does not run it twice.
    key_.assign(action_).append(1, '\n').append(held->id);
    try {
      auto on_ack = [self, held](const AckResult& r) {
        --self->in_flight_;
        self->in_flight_gauge_->set(static_cast<double>(self->in_flight_));
        self->settle(std::move(*held), r);
        // Refill in batches: once half the window is free, at the end of this loop turn (one
        // fetch for many acks, not one round trip per message).
        if (self->in_flight_ <= self->window_ / 2 && !self->pump_posted_) {
          self->pump_posted_ = true;
          self->ctx_.post([self] {
            self->pump_posted_ = false;
            self->pump();
          });
        }
      };
      detail::ReservedScope reserved(ctx_.messenger());
      if (key_.size() <= kMaxKeyLength)
        ctx_.messenger().send_random_once(action_, payload_, key_, std::move(on_ack));
      else
        ctx_.messenger().send_random(action_, payload_, std::move(on_ack));
    } catch (const MessengerError& e) {
      return refused(*held, e);
    }
    // Counted only once sent: a refused send must not shrink the window for good.
    ++in_flight_;
    in_flight_gauge_->set(static_cast<double>(in_flight_));
    return true;
  }

  bool refused(const QueueMessage& m, const MessengerError& e) {
    spdlog::warn("mq {}: message {} not sent ({}): back to the queue, waiting for the messenger",
                 options_.name, m.id, e.what());
    release(m);
    waiting_writable_ = true;
    auto self = shared_from_this();
    ctx_.messenger().on_writable([self] {
      self->waiting_writable_ = false;
      self->pump();
    });
    return false;
  }

  void release(const QueueMessage& m) {
    guard_source("releasing", [&] { source_->release(m); });
  }

  // A source call whose failure leaves the message to its visibility timeout: logged, not fatal.
  template <typename Fn>
  void guard_source(const char* doing, Fn&& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      spdlog::error("mq {}: {}: {}", options_.name, doing, e.what());
    }
  }

  void settle(QueueMessage&& m, const AckResult& r) {
    try {
      if (!r.ok && r.error.rfind(kInboxUnavailablePrefix, 0) == 0)
        return wait_for_inbox(std::move(m), r.error);
      if (r.ok) {
        inbox_outage_ = 0;
        handled_->inc();
        // Acks gathered over a loop turn go to the queue together (one XACK, one transaction).
        // An ack needs the id, not the body: the body is freed here rather than carried on (and
        // copied to a source's thread).
        QueueMessage ack;
        ack.id = std::move(m.id);
        ack.attempts = m.attempts;
        acks_.push_back(std::move(ack));
        if (!ack_flush_posted_) {
          ack_flush_posted_ = true;
          auto self = shared_from_this();
          ctx_.post([self] { self->flush_acks(); });
        }
        return;
      }
      if (r.handled_by == 0) {
        // The master could not hand it to a handler (the cluster is stopping): not an attempt.
        return source_->release(m);
      }
      failed_->inc();
      if (m.attempts + 1 >= options_.max_attempts) {
        dead_->inc();
        spdlog::error("mq {}: message {} failed {} times, dead-lettered: {}", options_.name, m.id,
                      m.attempts + 1, r.error);
        return source_->dead_letter(m, r.error);
      }
      auto delay = options_.retry_backoff * (int64_t{1} << std::min(m.attempts, 16));
      spdlog::warn("mq {}: message {} failed on worker {} (attempt {}): {}; retrying in {} ms",
                   options_.name, m.id, r.handled_by, m.attempts + 1, r.error, delay.count());
      source_->retry(m, delay, r.error);
    } catch (const std::exception& e) {
      // The message stays hidden until its visibility timeout, then comes back: not lost.
      spdlog::error("mq {}: cannot settle message {}: {}", options_.name, m.id, e.what());
    }
  }

  // The workers' inbox database is away: the message waits here (counted in the window, so that
  // the agent stops fetching), and all that wait are offered again after a back-off that grows
  // to 5 s. Not an attempt: an outage of the database must not dead-letter the queue.
  void wait_for_inbox(QueueMessage&& m, const std::string& error) {
    ++in_flight_;
    in_flight_gauge_->set(static_cast<double>(in_flight_));
    inbox_waiting_.push_back(std::move(m));
    auto now = std::chrono::steady_clock::now();
    if (inbox_outage_ == 0 || now - inbox_said_at_ > std::chrono::seconds(10)) {
      spdlog::warn("mq {}: {}; messages wait and are offered again (attempts not counted)",
                   options_.name, error);
      inbox_said_at_ = now;
    }
    if (inbox_retry_scheduled_) return;
    inbox_retry_scheduled_ = true;
    auto delay = std::min<std::chrono::milliseconds>(
        std::chrono::milliseconds(100) * (int64_t{1} << std::min(inbox_outage_++, 6)),
        std::chrono::seconds(5));
    auto self = shared_from_this();
    ctx_.set_timeout(delay, [self] {
      self->inbox_retry_scheduled_ = false;
      self->release_inbox_waiting();
      self->pump();
    });
  }

  void release_inbox_waiting() {
    in_flight_ -= inbox_waiting_.size();
    in_flight_gauge_->set(static_cast<double>(in_flight_));
    for (const QueueMessage& m : inbox_waiting_) release(m);
    inbox_waiting_.clear();
  }

  void flush_acks() {
    ack_flush_posted_ = false;
    if (acks_.empty()) return;
    std::vector<QueueMessage> batch = std::exchange(acks_, {});
    try {
      source_->ack_many(batch);
    } catch (const QueueUnavailable&) {
      // Reconnecting: the source keeps them and sends them once connected.
    } catch (const std::exception& e) {
      // Redis keeps them and sends them on reconnect; SQLite's come back after the visibility
      // timeout. Either way nothing is lost (a redelivery at worst).
      spdlog::error("mq {}: acknowledging {} message(s): {}", options_.name, batch.size(),
                    e.what());
    }
    // A source may hold acks for its next read; if slow workers keep the window full, no read
    // comes for a while, so they go out within one poll interval regardless.
    if (!source_flush_scheduled_) {
      source_flush_scheduled_ = true;
      auto self = shared_from_this();
      // Within a few milliseconds, not a count: a crash then re-runs only what was handled in
      // that last moment.
      ctx_.set_timeout(std::min(options_.poll_interval, std::chrono::milliseconds(5)), [self] {
        self->source_flush_scheduled_ = false;
        self->flush_source("acknowledging");
      });
    }
  }

  void flush_source(const char* doing) {
    try {
      source_->flush();
    } catch (const QueueUnavailable&) {
      // Reconnecting: the acks wait in the source, which logs its attempts.
    } catch (const std::exception& e) {
      spdlog::error("mq {}: {}: {}", options_.name, doing, e.what());
    }
  }

  Context& ctx_;
  ConsumeOptions options_;
  std::vector<QueueMessage> acks_;
  std::string action_ = action_of(options_);
  std::string payload_;       // the delivery being sent, reused
  std::string key_;           // its idempotency key, reused
  std::string inbox_source_;  // an exactly-once consumer's queue identity, for the workers
  std::vector<QueueMessage> inbox_waiting_;  // failed because the inbox was away
  bool inbox_retry_scheduled_ = false;
  int inbox_outage_ = 0;  // such failures in a row
  std::chrono::steady_clock::time_point inbox_said_at_{};
  bool ack_flush_posted_ = false, source_flush_scheduled_ = false;
  std::unique_ptr<MessageSource> source_;
  std::size_t in_flight_ = 0, window_ = 0;
  bool pumping_ = false, poll_scheduled_ = false, stopping_ = false, pump_posted_ = false,
       waiting_writable_ = false;
  std::string last_error_;
  std::chrono::steady_clock::time_point last_error_at_{};
  Counter *fetched_, *handled_, *failed_, *dead_;
  Gauge *in_flight_gauge_, *pending_gauge_, *lag_gauge_, *dead_gauge_;
  std::size_t pending_ = 0, dead_letters_ = 0;
  int64_t oldest_age_ms_ = -1;
  uint64_t ticks_ = 0;
  std::deque<std::pair<std::chrono::steady_clock::time_point, double>> rate_samples_;
};

// clutchctl queue, queue dead, requeue and purge, through the master.
void add_operator_commands(runtime::OperatorCommands& commands,
                           std::vector<std::shared_ptr<Consumer>> consumers) {
  using Reply = runtime::OperatorCommands::Reply;
  auto find = [consumers](const nlohmann::json& request) -> std::shared_ptr<Consumer> {
    std::string name = request.value("name", "");
    if (name.empty() && consumers.size() == 1) return consumers.front();
    for (const auto& c : consumers) {
      if (c->name() == name) return c;
    }
    std::string known;
    for (const auto& c : consumers) known += (known.empty() ? "" : ", ") + c->name();
    throw std::runtime_error(
        name.empty() ? fmt::format("name a consumer: {}", known.empty() ? "(none)" : known)
                     : fmt::format("no consumer named '{}' (consumers: {})", name,
                                   known.empty() ? "none" : known));
  };
  auto ids_of = [](const nlohmann::json& request) {
    std::vector<std::string> ids;
    if (request.contains("ids") && request["ids"].is_array()) {
      for (const auto& id : request["ids"]) {
        if (id.is_string()) ids.push_back(id);
      }
    }
    if (ids.empty() && !request.value("all", false))
      throw std::runtime_error("give dead letter ids, or all");
    return ids;
  };
  commands.add("queues", [consumers](const nlohmann::json&, Reply reply) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& c : consumers) out.push_back(c->stats());
    reply({{"queues", out}});
  });
  commands.add("queue-dead", [find](const nlohmann::json& request, Reply reply) {
    auto c = find(request);
    std::size_t limit = request.value("limit", 100);
    nlohmann::json out = nlohmann::json::array();
    for (const DeadLetter& d : c->list_dead(std::min<std::size_t>(limit, 10000))) {
      nlohmann::json headers = nlohmann::json::array();
      for (const auto& [key, value] : d.headers) headers.push_back({key, value});
      out.push_back({{"id", d.id},
                     {"message_id", d.message_id},
                     {"headers", headers},
                     {"body", d.body},
                     {"attempts", d.attempts},
                     {"error", d.error},
                     {"failed_at_ms", d.failed_at_ms}});
    }
    reply({{"name", c->name()}, {"dead", out}});
  });
  commands.add("queue-requeue", [find, ids_of](const nlohmann::json& request, Reply reply) {
    auto c = find(request);
    reply({{"name", c->name()}, {"requeued", c->requeue_dead(ids_of(request))}});
  });
  commands.add("queue-purge", [find, ids_of](const nlohmann::json& request, Reply reply) {
    auto c = find(request);
    reply({{"name", c->name()}, {"purged", c->purge_dead(ids_of(request))}});
  });
}

}  // namespace

// A delivery is "ID\nATTEMPTS\nBODY", or, when the message has headers,
// "ID\nATTEMPTS HEADER_BYTES\nHEADERS BODY" with each header as "KEYLEN:KEY VALLEN:VALUE"
// (netstring lengths, so keys and values may hold any byte).
void encode_delivery(const QueueMessage& m, std::string& out) {
  // Per message on the agent's hot path: plain appends into a reused buffer, no format parsing.
  char number[24];
  auto append_number = [&](std::size_t n) {
    out.append(number, std::to_chars(number, number + sizeof number, n).ptr);
  };
  out.clear();
  out.append(m.id).append(1, '\n');
  out.append(number, std::to_chars(number, number + sizeof number, m.attempts).ptr);
  if (m.headers.empty()) {
    out.append(1, '\n').append(m.body);
    return;
  }
  std::size_t header_bytes_at = out.size() + 1;
  out.append(" 0000000000\n");  // patched below, once the block's size is known
  std::size_t block_start = out.size();
  for (const auto& [key, value] : m.headers) {
    append_number(key.size());
    out.append(1, ':').append(key);
    append_number(value.size());
    out.append(1, ':').append(value);
  }
  std::string size = std::to_string(out.size() - block_start);
  out.replace(header_bytes_at, 10, std::string(10 - size.size(), '0') + size);
  out.append(m.body);
}

std::string encode_delivery(const QueueMessage& m) {
  std::string out;
  encode_delivery(m, out);
  return out;
}

namespace {
// Reads "LEN:BYTES" at the front of `in`; false if malformed.
bool take_netstring(std::string_view& in, std::string& out) {
  auto colon = in.find(':');
  std::size_t n = 0;
  if (colon == std::string_view::npos ||
      std::from_chars(in.data(), in.data() + colon, n).ptr != in.data() + colon ||
      in.size() - colon - 1 < n)
    return false;
  out.assign(in.substr(colon + 1, n));
  in.remove_prefix(colon + 1 + n);
  return true;
}
}  // namespace

QueueMessage decode_delivery(std::string_view payload) {
  QueueMessage m;
  auto first = payload.find('\n');
  auto second = first == std::string_view::npos ? first : payload.find('\n', first + 1);
  if (second == std::string_view::npos) {
    m.body = std::string(payload);
    return m;
  }
  m.id = std::string(payload.substr(0, first));
  std::string_view counts = payload.substr(first + 1, second - first - 1);
  std::string_view rest = payload.substr(second + 1);
  auto space = counts.find(' ');
  std::from_chars(counts.data(), counts.data() + std::min(space, counts.size()), m.attempts);
  if (space != std::string_view::npos) {
    std::size_t header_bytes = 0;
    std::from_chars(counts.data() + space + 1, counts.data() + counts.size(), header_bytes);
    header_bytes = std::min(header_bytes, rest.size());
    std::string_view block = rest.substr(0, header_bytes);
    rest.remove_prefix(header_bytes);
    std::string key, value;
    while (!block.empty() && take_netstring(block, key) && take_netstring(block, value))
      m.headers.emplace_back(std::move(key), std::move(value));
  }
  m.body = std::string(rest);
  return m;
}

void install_agent_consumers(Context& ctx, const ConsumerList& consumers,
                             runtime::OperatorCommands* commands) {
  std::vector<std::shared_ptr<Consumer>> started;
  for (const auto& declaration : consumers) {
    auto consumer = std::make_shared<Consumer>(ctx, declaration.options);
    consumer->start();
    started.push_back(consumer);
  }
  if (commands != nullptr) add_operator_commands(*commands, std::move(started));
}

void install_worker_handlers(Context& ctx, const ConsumerList& consumers) {
  for (const auto& declaration : consumers) {
    detail::ReservedScope reserved(ctx.messenger());
    if (declaration.async_handler) {
      AsyncQueueHandler run = declaration.async_handler;
      ctx.messenger().on(action_of(declaration.options), [&ctx, run](const Message& msg) {
        // Acknowledged when the coroutine ends, however long after this handler returns.
        Deferred answer = msg.defer();
        Task task = run(ctx, decode_delivery(msg.data()));
        task.then([answer](std::exception_ptr error) mutable {
          if (!error) return answer.ack();
          try {
            std::rethrow_exception(error);
          } catch (const std::exception& e) {
            answer.fail(e.what());
          } catch (...) {
            answer.fail("unknown exception");
          }
        });
      });
      continue;
    }
    if (declaration.exactly_once_handler) {
      install_exactly_once_handler(ctx, declaration);
      continue;
    }
    QueueHandler run = declaration.handler;
    ctx.messenger().on(action_of(declaration.options), [&ctx, run](const Message& msg) {
      run(ctx, decode_delivery(msg.data()));  // returning acknowledges; throwing fails it
    });
  }
}

std::unique_ptr<runtime::Component> component(ConsumerList consumers) {
  return runtime::make_component(std::move(consumers), &install_agent_consumers,
                                 &install_worker_handlers);
}

}  // namespace clutch::mq
