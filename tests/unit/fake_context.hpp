// A Context and Messenger with no process behind them, for testing the agent-side logic
// (scheduler clock, queue consumer) alone: timers and posts run when the test says, sends are
// recorded (or refused on demand), and acks are the test's to give.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "clutch/context.hpp"

namespace clutch::testing {

class FakeMessenger : public Messenger {
 public:
  struct Sent {
    std::string action, data;
    std::function<void(const AckResult&)> on_ack;
    std::string key;
  };
  std::vector<Sent> sent;  // acknowledged send_random, in order
  bool refuse = false;     // sends throw MessengerError, as with a full queue
  std::vector<std::function<void()>> writable;

  void broadcast(std::string_view, std::string_view) override { check(); }
  void send_to_app(std::string_view, std::string_view) override { check(); }
  void send_to_others(std::string_view, std::string_view) override { check(); }
  void send_to_agent(std::string_view, std::string_view) override { check(); }
  void send_random(std::string_view, std::string_view) override { check(); }
  void send_random(std::string_view action, std::string_view data,
                   std::function<void(const AckResult&)> on_ack) override {
    check();
    sent.push_back({std::string(action), std::string(data), std::move(on_ack)});
  }
  void send_random_once(std::string_view action, std::string_view data, std::string_view key,
                        std::function<void(const AckResult&)> on_ack) override {
    check();
    sent.push_back({std::string(action), std::string(data), std::move(on_ack), std::string(key)});
  }
  void send_to(int, std::string_view, std::string_view) override { check(); }
  void request(Target, std::string_view, std::string_view, std::chrono::milliseconds,
               std::function<void(const Reply&)>) override {
    check();
  }
  HandlerId on(std::string_view, Handler) override { return 1; }
  HandlerId once(std::string_view, Handler) override { return 1; }
  void off(std::string_view) override {}
  void off(HandlerId) override {}
  std::vector<int> workers() const override { return {100}; }
  int agent() const override { return 99; }
  void on_member(std::function<void(const MemberEvent&)>) override {}
  void on_error(std::function<void(const DeliveryError&)>) override {}
  std::size_t pending_bytes() const override { return 0; }
  void on_writable(std::function<void()> fn) override { writable.push_back(std::move(fn)); }

  // Acknowledges every recorded send (ok), oldest first; returns how many.
  std::size_t ack_all(bool ok = true) {
    auto batch = std::exchange(sent, {});
    for (auto& s : batch) s.on_ack(AckResult{ok, ok ? "" : "failed", 100});
    return batch.size();
  }

 private:
  void check() {
    if (refuse) throw MessengerError("messenger queue full (test)");
  }
};

class FakeContext : public Context {
 public:
  FakeMessenger fake;
  Config cfg;

  Role role() const override { return Role::kAgent; }
  int pid() const override { return 99; }
  int master_pid() const override { return 1; }
  int worker_index() const override { return -1; }
  const Config& config() const override { return cfg; }
  bool replacement() const override { return false; }
  Messenger& messenger() override { return fake; }
  Metrics& metrics() override { return metrics_; }
  int listen_fd() const override { return -1; }
  int port() const override { return 0; }
  TimerId set_timeout(std::chrono::milliseconds, std::function<void()> fn) override {
    timers_[next_] = {std::move(fn), false};
    return next_++;
  }
  TimerId set_interval(std::chrono::milliseconds, std::function<void()> fn) override {
    timers_[next_] = {std::move(fn), true};
    return next_++;
  }
  void cancel_timer(TimerId id) override { timers_.erase(id); }
  void post(std::function<void()> fn) override { posted_.push_back(std::move(fn)); }
  void on_ready(std::function<void()> fn) override { ready_.push_back(std::move(fn)); }
  void on_stop(std::function<void(std::function<void()>)> fn) override {
    stop_.push_back(std::move(fn));
  }
  bool stopping() const override { return false; }
  void* native_loop() override { return nullptr; }

  void ready() {
    for (auto& fn : ready_) fn();
    run_posted();
  }
  // Fires every timer once (a timeout is then gone), then what they posted.
  void fire_timers() {
    auto due = timers_;
    for (auto& [id, t] : due) {
      if (!t.repeat) timers_.erase(id);
      t.fn();
    }
    run_posted();
  }
  void run_posted() {
    for (int round = 0; round < 100 && !posted_.empty(); ++round) {
      for (auto& fn : std::exchange(posted_, {})) fn();
    }
  }

 private:
  Metrics metrics_;
  struct Timer {
    std::function<void()> fn;
    bool repeat;
  };
  std::map<TimerId, Timer> timers_;
  TimerId next_ = 1;
  std::vector<std::function<void()>> posted_, ready_;
  std::vector<std::function<void(std::function<void()>)>> stop_;
};

}  // namespace clutch::testing
