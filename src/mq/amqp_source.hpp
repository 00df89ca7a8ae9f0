// An AMQP 0-9-1 queue (RabbitMQ) as a MessageSource. The connection lives on its own thread
// (AmqpLink), so no call here waits on the broker except the operator's dead-letter commands and
// a producer's publish, which wait (boundedly) for the broker's answer.
//
// Settling: an ack is basic.ack; a release is basic.reject with requeue. A retry waits here for
// its back-off (the delivery stays unacknowledged, so a crash loses nothing), then is published
// again with its attempt count in the x-clutch-attempts header and the original acknowledged once
// the broker confirms the copy. A dead letter is published (confirmed) to the dead-letter queue
// with the error in headers, then the original is acknowledged. A lost connection makes the
// broker requeue everything it had not been told about; settling those later is a no-op.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "clutch/mq.hpp"
#include "mq/amqp_link.hpp"

namespace clutch::mq {

class AmqpSource final : public MessageSource {
 public:
  explicit AmqpSource(AmqpUrl url);
  ~AmqpSource() override;

  std::vector<QueueMessage> fetch(std::size_t max) override;
  void ack(const QueueMessage& message) override;
  void ack_many(const std::vector<QueueMessage>& messages) override;
  void avoid_blocking() override { blocking_ = false; }
  void set_waker(std::function<void()> wake) override { link_->set_waker(std::move(wake)); }
  void flush() override { emit_log(); }
  void close() override;
  void retry(const QueueMessage& message, std::chrono::milliseconds delay,
             std::string_view error) override;
  void release(const QueueMessage& message) override;
  void dead_letter(const QueueMessage& message, std::string_view error) override;
  void publish(std::string_view body) override;
  void publish_with_headers(std::string_view body, const QueueHeaders& headers) override;
  void publish_many(const std::vector<std::string>& bodies) override;
  void recover_in_flight() override {}  // the broker requeues a dead connection's deliveries
  std::string identity() override {
    return "amqp:" + link_->url().vhost + "/" + link_->url().queue;
  }
  std::size_t pending() override;
  std::size_t dead_letters() override;
  std::vector<DeadLetter> list_dead(std::size_t max) override;
  std::size_t requeue_dead(const std::vector<std::string>& ids) override;
  std::size_t purge_dead(const std::vector<std::string>& ids) override;
  void keep_alive() override { emit_log(); }
  void require_stable_ids() override { require_stable_ids_ = true; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Held {
    uint64_t generation = 0, tag = 0;
  };
  struct Delayed {
    Clock::time_point due;
    QueueMessage message;
    Held delivery;
    std::string error;
  };
  // The delivery behind a message handed out (the oldest, if one id is out twice); none: {}.
  Held take_held(const QueueMessage& message);
  // Posts a copy of `m` to `queue`, then acknowledges the original once the broker confirms it
  // (or requeues the original if the broker refuses the copy).
  void republish_then_ack(AmqpPublication copy, Held original);
  // Runs `fn` on the link's thread and waits for its result (at most kWait).
  template <typename T>
  T ask(std::function<T(AmqpSession&)> fn, const char* doing);
  void emit_log();
  std::string new_message_id();

  std::shared_ptr<AmqpLink> link_;
  bool blocking_ = true;
  std::map<std::string, std::deque<Held>> held_;  // by message id
  std::size_t held_count_ = 0;
  bool require_stable_ids_ = false, said_renaming_ = false;
  std::deque<Delayed> delayed_;
  std::mt19937_64 random_{std::random_device{}()};
};

}  // namespace clutch::mq
