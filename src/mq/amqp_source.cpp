#include "mq/amqp_source.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <set>
#include <stdexcept>

#include "mq/ask_thread.hpp"

namespace clutch::mq {
namespace {

// How long the operator's dead-letter commands and a producer's publish wait for the broker.
constexpr std::chrono::seconds kWait{10};
// How many dead letters a requeue or purge by id looks through.
constexpr std::size_t kMaxBrowse = 1'000'000;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

AmqpPublication publication(std::string queue, std::string body, std::string message_id,
                            QueueHeaders headers = {}) {
  AmqpPublication p;
  p.queue = std::move(queue);
  p.body = std::move(body);
  p.message_id = std::move(message_id);
  p.headers = std::move(headers);
  return p;
}

}  // namespace

AmqpSource::AmqpSource(AmqpUrl url) : link_(AmqpLink::start(std::move(url))) {}

AmqpSource::~AmqpSource() {
  link_->stop(std::chrono::seconds(1));
}

void AmqpSource::close() {
  link_->drain(std::chrono::seconds(1));
  emit_log();
}

void AmqpSource::emit_log() {
  for (auto& [error, text] : link_->take_log()) {
    if (error)
      spdlog::error("mq: {}", text);
    else
      spdlog::info("mq: {}", text);
  }
}

std::string AmqpSource::new_message_id() {
  return fmt::format("{:016x}{:016x}", random_(), random_());
}

std::vector<QueueMessage> AmqpSource::fetch(std::size_t max) {
  emit_log();
  // Retries whose back-off is over go back to the broker as copies with one more attempt.
  auto now = Clock::now();
  while (!delayed_.empty() && delayed_.front().due <= now) {
    Delayed d = std::move(delayed_.front());
    delayed_.pop_front();
    AmqpPublication copy = publication(link_->url().queue, std::move(d.message.body), d.message.id,
                                       std::move(d.message.headers));
    copy.attempts = d.message.attempts + 1;
    republish_then_ack(std::move(copy), d.delivery);
  }
  if (blocking_ && !link_->connected()) {
    throw QueueUnavailable(
        fmt::format("AMQP {}:{} not connected", link_->url().host, link_->url().port));
  }
  std::vector<QueueMessage> out;
  for (AmqpDelivery& d : link_->take_deliveries(max)) {
    if (require_stable_ids_ && !d.named_by_publisher) {
      // Not handled yet, so republishing it under a name of its own changes nothing but its
      // place in the queue; from then on every redelivery carries that name.
      if (!said_renaming_) {
        said_renaming_ = true;
        spdlog::warn(
            "mq: messages without a message_id are republished with one before they are "
            "handled (an exactly-once inbox recognises a redelivery by it); publishers can set "
            "it (clutchctl publish and clutch::Producer do)");
      }
      AmqpPublication copy = publication(link_->url().queue, std::move(d.message.body),
                                         new_message_id(), std::move(d.message.headers));
      copy.attempts = d.message.attempts;
      republish_then_ack(std::move(copy), {d.generation, d.tag});
      continue;
    }
    held_[d.message.id].push_back({d.generation, d.tag});
    ++held_count_;
    out.push_back(std::move(d.message));
  }
  return out;
}

AmqpSource::Held AmqpSource::take_held(const QueueMessage& message) {
  auto it = held_.find(message.id);
  if (it == held_.end()) return {};
  Held h = it->second.front();
  it->second.pop_front();
  if (it->second.empty()) held_.erase(it);
  --held_count_;
  return h;
}

void AmqpSource::ack(const QueueMessage& message) {
  ack_many({message});
}

void AmqpSource::ack_many(const std::vector<QueueMessage>& messages) {
  std::vector<Held> acks;
  acks.reserve(messages.size());
  for (const QueueMessage& m : messages) {
    if (Held h = take_held(m); h.tag != 0) acks.push_back(h);
  }
  if (acks.empty()) return;
  link_->post([acks = std::move(acks)](AmqpSession& s) {
    for (const Held& h : acks) {
      // A tag from an older connection means nothing now: the broker requeued that delivery.
      if (h.generation == s.generation()) s.ack(h.tag);
    }
  });
}

void AmqpSource::release(const QueueMessage& message) {
  Held h = take_held(message);
  if (h.tag == 0) return;
  link_->post([h](AmqpSession& s) {
    if (h.generation == s.generation()) s.reject(h.tag, true);
  });
}

void AmqpSource::retry(const QueueMessage& message, std::chrono::milliseconds delay,
                       std::string_view error) {
  Held h = take_held(message);
  if (h.tag == 0) return;
  Delayed d{Clock::now() + delay, message, h, std::string(error)};
  auto at = std::upper_bound(delayed_.begin(), delayed_.end(), d.due,
                             [](Clock::time_point due, const Delayed& x) { return due < x.due; });
  delayed_.insert(at, std::move(d));
}

void AmqpSource::dead_letter(const QueueMessage& message, std::string_view error) {
  Held h = take_held(message);
  if (h.tag == 0) return;
  AmqpPublication copy =
      publication(link_->url().dead_queue, message.body, message.id, message.headers);
  copy.attempts = message.attempts + 1;
  copy.error = std::string(error);
  copy.failed_at_ms = now_ms();
  republish_then_ack(std::move(copy), h);
}

void AmqpSource::republish_then_ack(AmqpPublication copy, Held original) {
  link_->post([copy = std::move(copy), original](AmqpSession& s) {
    if (original.generation != s.generation()) return;  // already redelivered as it was
    s.publish(copy, [&s, original](bool ok) {
      // The callback runs on the link's thread; after a lost connection it runs with ok = false
      // and the session closed, and the broker redelivers the original.
      if (original.generation != s.generation() || !s.connected()) return;
      if (ok)
        s.ack(original.tag);
      else
        s.reject(original.tag, true);
    });
  });
}

void AmqpSource::publish(std::string_view body) {
  publish_with_headers(body, {});
}

void AmqpSource::publish_with_headers(std::string_view body, const QueueHeaders& headers) {
  AmqpPublication p = publication(link_->url().queue, std::string(body), new_message_id(), headers);
  ask<bool>(
      [p = std::move(p)](AmqpSession& s) {
        s.publish_confirmed(p);
        return true;
      },
      "publishing");
}

void AmqpSource::publish_many(const std::vector<std::string>& bodies) {
  std::vector<AmqpPublication> batch;
  batch.reserve(bodies.size());
  for (const std::string& body : bodies)
    batch.push_back(publication(link_->url().queue, body, new_message_id()));
  ask<bool>(
      [batch = std::move(batch)](AmqpSession& s) {
        s.publish_confirmed(batch.data(), batch.size());
        return true;
      },
      "publishing");
}

template <typename T>
T AmqpSource::ask(std::function<T(AmqpSession&)> fn, const char* doing) {
  auto post = [this](std::function<void(AmqpSession&)> job) { link_->post(std::move(job)); };
  std::optional<T> answer;
  try {
    // Rethrown on the link's thread too: the connection is suspect, and the link reconnects.
    answer = ask_thread<T>(post, std::move(fn), kWait, true);
  } catch (const std::exception& e) {
    emit_log();
    throw std::runtime_error(fmt::format("mq: {} on AMQP {}:{}: {}", doing, link_->url().host,
                                         link_->url().port, e.what()));
  }
  emit_log();
  if (!answer)
    throw std::runtime_error(fmt::format("mq: {} on AMQP {}:{}: no answer within {} s", doing,
                                         link_->url().host, link_->url().port, kWait.count()));
  return std::move(*answer);
}

std::size_t AmqpSource::pending() {
  int64_t ready = link_->ready_count();
  return (ready < 0 ? 0 : static_cast<std::size_t>(ready)) + held_count_ + delayed_.size();
}

std::size_t AmqpSource::dead_letters() {
  int64_t dead = link_->dead_count();
  return dead < 0 ? 0 : static_cast<std::size_t>(dead);
}

std::vector<DeadLetter> AmqpSource::list_dead(std::size_t max) {
  return ask<std::vector<DeadLetter>>(
      [max](AmqpSession& s) {
        std::vector<DeadLetter> out;
        s.browse_dead(max, [&](const AmqpSession::Browsed& b) {
          out.push_back({.id = b.message_id,
                         .message_id = b.message_id,
                         .body = b.body,
                         .headers = b.headers,
                         .attempts = b.attempts,
                         .error = b.error,
                         .failed_at_ms = b.failed_at_ms});
          return false;  // only looking
        });
        return out;
      },
      "listing dead letters");
}

std::size_t AmqpSource::requeue_dead(const std::vector<std::string>& ids) {
  std::set<std::string> wanted(ids.begin(), ids.end());
  std::string queue = link_->url().queue;
  return ask<std::size_t>(
      [wanted, queue](AmqpSession& s) {
        std::size_t moved = 0;
        s.browse_dead(kMaxBrowse, [&](const AmqpSession::Browsed& b) {
          if (!wanted.empty() && !wanted.count(b.message_id)) return false;
          // Back as a new message (attempts from 0), confirmed before the dead letter goes.
          s.publish_confirmed(publication(queue, b.body, b.message_id, b.headers));
          ++moved;
          return true;
        });
        return moved;
      },
      "requeueing dead letters");
}

std::size_t AmqpSource::purge_dead(const std::vector<std::string>& ids) {
  std::set<std::string> wanted(ids.begin(), ids.end());
  return ask<std::size_t>(
      [wanted](AmqpSession& s) {
        if (wanted.empty()) return s.purge_dead();
        std::size_t gone = 0;
        s.browse_dead(kMaxBrowse, [&](const AmqpSession::Browsed& b) {
          bool match = wanted.count(b.message_id) > 0;
          gone += match ? 1 : 0;
          return match;
        });
        return gone;
      },
      "purging dead letters");
}

}  // namespace clutch::mq
