#include "runtime/process_context.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>
#include <asio/post.hpp>

#include "messaging/control_ops.hpp"
#include "runtime/uncaught.hpp"

namespace clutch::runtime {
namespace {
// Runs user code from the loop; an exception is logged, not allowed to take the process down.
void guarded(const char* what, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    uncaught(what, e.what());
  } catch (...) {
    uncaught(what, "a non-standard exception");
  }
}
}  // namespace

ProcessContext::ProcessContext(asio::io_context& io, Config config, ProcessIdentity identity,
                               std::shared_ptr<MessengerClient> messenger)
    : io_(io),
      config_(std::move(config)),
      identity_(identity),
      pid_(getpid()),
      messenger_(std::move(messenger)),
      idle_timer_(std::make_unique<asio::steady_timer>(io)) {}

TimerId ProcessContext::set_timeout(std::chrono::milliseconds delay, std::function<void()> fn) {
  TimerId id = next_timer_++;
  timers_[id] = Timer{std::make_unique<asio::steady_timer>(io_), std::move(fn), delay};
  arm(id, delay, false);
  return id;
}

TimerId ProcessContext::set_interval(std::chrono::milliseconds period, std::function<void()> fn) {
  TimerId id = next_timer_++;
  timers_[id] = Timer{std::make_unique<asio::steady_timer>(io_), std::move(fn), period};
  arm(id, period, true);
  return id;
}

void ProcessContext::arm(TimerId id, std::chrono::milliseconds delay, bool repeat) {
  auto& t = timers_.at(id);
  auto now = asio::steady_timer::clock_type::now();
  if (repeat && t.armed) {
    // Fixed rate: the next tick is due one period after the previous due time, not after the
    // handler finished, so the ticks do not drift; a loop that fell a whole period behind
    // starts afresh instead of firing a burst.
    auto next = t.timer->expiry() + delay;
    t.timer->expires_at(next < now ? now + delay : next);
  } else {
    t.timer->expires_after(delay);
  }
  t.armed = true;
  t.timer->async_wait([this, id, repeat](const asio::error_code& ec) {
    if (ec) return;
    auto it = timers_.find(id);
    if (it == timers_.end()) return;
    std::function<void()> fn = it->second.fn;
    if (repeat)
      arm(id, it->second.period, true);
    else
      timers_.erase(it);
    guarded("timer", fn);
  });
}

void ProcessContext::cancel_timer(TimerId id) {
  if (auto it = timers_.find(id); it != timers_.end()) {
    it->second.timer->cancel();
    timers_.erase(it);
  }
}

void ProcessContext::post(std::function<void()> fn) {
  asio::post(io_, [fn = std::move(fn)] { guarded("posted function", fn); });
}

void ProcessContext::cluster_ready() {
  if (ready_done_) return;
  ready_done_ = true;
  for (auto& fn : ready_fns_) guarded("on_ready hook", fn);
}

void ProcessContext::begin_stop(std::function<void(int)> exit) {
  if (stopping_) return;
  stopping_ = true;
  exit_ = std::move(exit);
  spdlog::debug("stopping: waiting for the master to confirm the drain");
  messenger_->on_drain_ok = [this] { after_drain_ok(); };
  messenger_->send_control(messaging::kOpDraining);
}

void ProcessContext::after_drain_ok() {
  // Every message routed here has now been handled (the channel is FIFO); what remains is
  // deferred work and the app's own stop hooks. Timers keep running: a pending one may be the
  // second half of in-flight work (an HTTP response due after some I/O).
  start_stop_hooks();
  wait_until_idle();
}

void ProcessContext::start_stop_hooks() {
  stop_hooks_running_ = stop_fns_.size();
  for (auto& fn : std::exchange(stop_fns_, {})) {
    auto called = std::make_shared<bool>(false);
    guarded("on_stop hook", [&] {
      fn([this, called] {
        if (*called) return;  // done() twice counts once
        *called = true;
        --stop_hooks_running_;
      });
    });
  }
}

void ProcessContext::stop_after_failed_setup(std::chrono::milliseconds limit) {
  // What the setup opened before it threw gets its stop hooks, as on any stop; the loop turns
  // (boundedly) so that hooks finishing asynchronously can.
  stopping_ = true;
  if (stop_fns_.empty()) return;
  start_stop_hooks();
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (stop_hooks_running_ > 0 && std::chrono::steady_clock::now() < deadline) {
    io_.restart();
    io_.run_for(std::chrono::milliseconds(10));
  }
  if (stop_hooks_running_ > 0) {
    spdlog::warn("{} on_stop hook(s) still running {} ms after a failed setup: exiting",
                 stop_hooks_running_, limit.count());
  }
}

void ProcessContext::wait_until_idle() {
  if (stop_hooks_running_ == 0 && messenger_->open_messages() == 0 &&
      messenger_->pending_bytes() == 0) {
    if (!before_exit) return exit_(0);
    // Once more round the wait, so that what it sent is flushed too.
    std::exchange(before_exit, nullptr)();
  }
  // Polling every 2 ms keeps this simple; the master's kill_timeout bounds the wait.
  idle_timer_->expires_after(std::chrono::milliseconds(2));
  idle_timer_->async_wait([this](const asio::error_code& ec) {
    if (!ec) wait_until_idle();
  });
}

}  // namespace clutch::runtime
