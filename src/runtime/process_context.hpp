// The Context of an agent or worker process: identity, messenger, timers, lifecycle hooks, and
// the graceful stop (drain) sequence.
#pragma once

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <map>
#include <memory>
#include <vector>

#include "clutch/context.hpp"
#include "runtime/messenger_client.hpp"
#include "runtime/operator_commands.hpp"

namespace clutch::runtime {

struct ProcessIdentity {
  Role role = Role::kWorker;
  int worker_index = -1;
  int listen_fd = -1;
  int port = 0;
  bool replacement = false;
  int master_pid = 0;
};

class ProcessContext final : public Context {
 public:
  ProcessContext(asio::io_context& io, Config config, ProcessIdentity identity,
                 std::shared_ptr<MessengerClient> messenger);

  Role role() const override { return identity_.role; }
  int pid() const override { return pid_; }
  int master_pid() const override { return identity_.master_pid; }
  int worker_index() const override { return identity_.worker_index; }
  const Config& config() const override { return config_; }
  bool replacement() const override { return identity_.replacement; }
  Messenger& messenger() override { return *messenger_; }
  Metrics& metrics() override { return metrics_; }
  int listen_fd() const override { return identity_.listen_fd; }
  int port() const override { return identity_.port; }
  TimerId set_timeout(std::chrono::milliseconds delay, std::function<void()> fn) override;
  TimerId set_interval(std::chrono::milliseconds period, std::function<void()> fn) override;
  void cancel_timer(TimerId id) override;
  void post(std::function<void()> fn) override;
  void on_ready(std::function<void()> fn) override { ready_fns_.push_back(std::move(fn)); }
  void on_stop(std::function<void(std::function<void()>)> fn) override {
    stop_fns_.push_back(std::move(fn));
  }
  bool stopping() const override { return stopping_; }
  void* native_loop() override { return &io_; }

  // Runtime side.
  OperatorCommands& operator_commands() { return operator_commands_; }
  // Called once when a graceful stop is done, before the process leaves (its last report).
  std::function<void()> before_exit;
  void cluster_ready();
  // Starts the graceful stop: tell the master, take what it already routed here, run the stop
  // hooks, wait for open messages, flush, then call `exit(0)`.
  void begin_stop(std::function<void(int)> exit);
  // The setup threw: runs the stop hooks it had registered (bounded by `limit`), so that what it
  // opened is closed as on any stop.
  void stop_after_failed_setup(std::chrono::milliseconds limit);

 private:
  void arm(TimerId id, std::chrono::milliseconds delay, bool repeat);
  void after_drain_ok();
  void start_stop_hooks();
  void wait_until_idle();

  asio::io_context& io_;
  Config config_;
  ProcessIdentity identity_;
  int pid_;
  std::shared_ptr<MessengerClient> messenger_;
  Metrics metrics_;
  OperatorCommands operator_commands_;
  struct Timer {
    std::unique_ptr<asio::steady_timer> timer;
    std::function<void()> fn;
    std::chrono::milliseconds period;
    bool armed = false;  // the first arming counts from now, later ones from the last due time
  };
  std::map<TimerId, Timer> timers_;
  TimerId next_timer_ = 1;
  std::vector<std::function<void()>> ready_fns_;
  std::vector<std::function<void(std::function<void()>)>> stop_fns_;
  bool ready_done_ = false, stopping_ = false;
  std::size_t stop_hooks_running_ = 0;
  std::function<void(int)> exit_;
  std::unique_ptr<asio::steady_timer> idle_timer_;
};

}  // namespace clutch::runtime
