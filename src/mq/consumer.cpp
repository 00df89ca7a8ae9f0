#include "mq/consumer.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <memory>

namespace clutch::mq {
namespace {

// The messenger's limit on an idempotency key (ipc::kMaxKeyLength); a consumer whose name and
// message ids make longer keys sends without one.
constexpr std::size_t kMaxKeyLength = 254;

std::string action_of(const ConsumeOptions& o) {
  return "mq:" + o.name;
}

// Pulls from the source while the workers have room, hands each message to one worker and
// settles it with the source when the worker's acknowledgement comes back.
class Consumer : public std::enable_shared_from_this<Consumer> {
 public:
  Consumer(Context& ctx, ConsumeOptions options)
      : ctx_(ctx), options_(std::move(options)), source_(open_message_source(options_.url)) {}

  void start() {
    source_->avoid_blocking();
    source_->recover_in_flight();
    auto self = shared_from_this();
    ctx_.on_ready([self] { self->pump(); });
    ctx_.on_stop([self](std::function<void()> done) {
      self->stopping_ = true;
      // The workers stopped first, so every ack is in; none may wait for a read that won't come.
      self->flush_acks();
      self->flush_source("stopping");
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
    encode_delivery(m, payload_);  // into one reused buffer: the messenger copies it out
    if (payload_.size() > ctx_.config().max_message_size) {
      // It can never be delivered: say so once and keep it, rather than fetch it forever.
      std::string why = fmt::format("message of {} bytes is over max_message_size ({} bytes)",
                                    payload_.size(), ctx_.config().max_message_size);
      spdlog::error("mq {}: message {} dead-lettered: {}", options_.name, m.id, why);
      guard_source("dead-lettering", [&] { source_->dead_letter(m, why); });
      return true;
    }
    if (options_.naive) {
      // The seed's bug on purpose: every worker runs the callback.
      try {
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
      if (key_.size() <= kMaxKeyLength)
        ctx_.messenger().send_random_once(action_, payload_, key_, std::move(on_ack));
      else
        ctx_.messenger().send_random(action_, payload_, std::move(on_ack));
    } catch (const MessengerError& e) {
      return refused(*held, e);
    }
    // Counted only once sent: a refused send must not shrink the window for good.
    ++in_flight_;
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
      if (r.ok) {
        // Acks gathered over a loop turn go to the queue together (one XACK, one transaction).
        acks_.push_back(std::move(m));
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
      if (m.attempts + 1 >= options_.max_attempts) {
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
      ctx_.set_timeout(options_.poll_interval, [self] {
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
  std::string payload_;  // the delivery being sent, reused
  std::string key_;      // its idempotency key, reused
  bool ack_flush_posted_ = false, source_flush_scheduled_ = false;
  std::unique_ptr<MessageSource> source_;
  std::size_t in_flight_ = 0, window_ = 0;
  bool pumping_ = false, poll_scheduled_ = false, stopping_ = false, pump_posted_ = false,
       waiting_writable_ = false;
  std::string last_error_;
  std::chrono::steady_clock::time_point last_error_at_{};
};

}  // namespace

void encode_delivery(const QueueMessage& m, std::string& out) {
  // Per message on the agent's hot path: plain appends into a reused buffer, no format parsing.
  char attempts[16];
  auto end = std::to_chars(attempts, attempts + sizeof attempts, m.attempts).ptr;
  out.clear();
  out.append(m.id).append(1, '\n').append(attempts, end).append(1, '\n').append(m.body);
}

std::string encode_delivery(const QueueMessage& m) {
  std::string out;
  encode_delivery(m, out);
  return out;
}

QueueMessage decode_delivery(std::string_view payload) {
  QueueMessage m;
  auto first = payload.find('\n');
  auto second = first == std::string_view::npos ? first : payload.find('\n', first + 1);
  if (second == std::string_view::npos) {
    m.body = std::string(payload);
    return m;
  }
  m.id = std::string(payload.substr(0, first));
  m.attempts = std::atoi(std::string(payload.substr(first + 1, second - first - 1)).c_str());
  m.body = std::string(payload.substr(second + 1));
  return m;
}

void install_agent_consumers(Context& ctx, const ConsumerList& consumers) {
  for (const auto& [options, handler] : consumers) {
    auto consumer = std::make_shared<Consumer>(ctx, options);
    consumer->start();
  }
}

void install_worker_handlers(Context& ctx, const ConsumerList& consumers) {
  for (const auto& [options, handler] : consumers) {
    QueueHandler run = handler;
    ctx.messenger().on(action_of(options), [&ctx, run](const Message& msg) {
      run(ctx, decode_delivery(msg.data()));  // returning acknowledges; throwing fails it
    });
  }
}

}  // namespace clutch::mq
