// C++20 coroutines over the callback API, so async code reads like egg's `await`:
//
//   clutch::Task refresh(clutch::Context& ctx) {
//     clutch::Reply r = co_await clutch::co::request(ctx.messenger(), clutch::Target::agent(),
//                                                    "config", "", std::chrono::seconds(2));
//     if (!r.ok) co_return;                           // timeout, dead replier: r.error says which
//     clutch::AckResult a = co_await clutch::co::send_random(ctx.messenger(), "apply", r.data);
//     co_await clutch::co::sleep(ctx, std::chrono::milliseconds(100));
//   }
//   ...  refresh(ctx);   // starts now, goes on from the loop after each co_await
//
// Everything runs on the process's loop (no threads). A Task starts at once and runs to its first
// co_await. An exception escaping a Task nobody awaits with then() is an uncaught exception
// (config on_uncaught_exception). If the process stops while a Task waits, its frame is freed.
// The callback forms stay; these are thin layers over them.
#pragma once

#include <chrono>
#include <coroutine>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "clutch/context.hpp"
#include "clutch/messenger.hpp"

namespace clutch {

namespace detail {
// Logs (or exits, per on_uncaught_exception) for an exception that escaped a Task.
void task_failed(std::exception_ptr error);
}  // namespace detail

class Task {
 public:
  struct State {
    bool done = false, detached = false;
    std::exception_ptr error;
    std::function<void(std::exception_ptr)> then;
  };
  struct promise_type {
    std::shared_ptr<State> state = std::make_shared<State>();
    Task get_return_object() { return Task(state); }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() { finish(nullptr); }
    void unhandled_exception() { finish(std::current_exception()); }
    void finish(std::exception_ptr error) {
      state->done = true;
      state->error = error;
      if (state->then)
        std::exchange(state->then, nullptr)(error);
      else if (error && state->detached)
        detail::task_failed(error);
    }
  };

  Task(Task&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (!state_ || state_->then) return;
    state_->detached = true;
    if (state_->done && state_->error) detail::task_failed(state_->error);
  }
  // Calls `fn` once the coroutine ends (at once if it has), with its exception or null.
  void then(std::function<void(std::exception_ptr)> fn) {
    if (state_->done) return fn(state_->error);
    state_->then = std::move(fn);
  }
  bool done() const { return state_->done; }

 private:
  explicit Task(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

namespace co {
namespace detail {

// Resumes the waiting coroutine once; if the callback that owns it is dropped uncalled (the
// process is stopping), frees the coroutine's frame instead of leaking it.
struct Resumer {
  std::coroutine_handle<> handle;
  explicit Resumer(std::coroutine_handle<> h) : handle(h) {}
  Resumer(const Resumer&) = delete;
  ~Resumer() {
    if (handle) handle.destroy();
  }
  void resume() {
    if (auto h = std::exchange(handle, nullptr)) h.resume();
  }
};

// An awaiter whose operation is started by `start(callback)` and finished by the callback.
template <typename Result, typename Start>
class CallbackAwaiter {
 public:
  explicit CallbackAwaiter(Start start) : start_(std::move(start)) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    auto resumer = std::make_shared<Resumer>(h);
    try {
      start_([this, resumer](Result r) {
        result_ = std::move(r);
        resumer->resume();  // `this` lives in the frame: not touched after this
      });
    } catch (...) {
      resumer->handle = nullptr;  // the exception resumes the coroutine at its co_await
      throw;
    }
  }
  Result await_resume() { return std::move(result_); }

 private:
  Start start_;
  Result result_{};
};

template <typename Result, typename Start>
CallbackAwaiter<Result, Start> awaiter(Start start) {
  return CallbackAwaiter<Result, Start>(std::move(start));
}

}  // namespace detail

// co_await: the Reply of a request (ok false on timeout, a dead replier, a handler's throw).
inline auto request(Messenger& m, Target target, std::string action, std::string data,
                    std::chrono::milliseconds timeout) {
  return detail::awaiter<Reply>([&m, target, action = std::move(action), data = std::move(data),
                                 timeout](std::function<void(Reply)> done) {
    m.request(target, action, data, timeout, [done](const Reply& r) { done(r); });
  });
}

// co_await: the AckResult of an acknowledged send_random (redelivered if the worker dies).
inline auto send_random(Messenger& m, std::string action, std::string data) {
  return detail::awaiter<AckResult>([&m, action = std::move(action),
                                     data = std::move(data)](std::function<void(AckResult)> done) {
    m.send_random(action, data, [done](const AckResult& r) { done(r); });
  });
}

// co_await: the AckResult of send_random_once (a resend with the same key runs once).
inline auto send_random_once(Messenger& m, std::string action, std::string data, std::string key) {
  return detail::awaiter<AckResult>([&m, action = std::move(action), data = std::move(data),
                                     key = std::move(key)](std::function<void(AckResult)> done) {
    m.send_random_once(action, data, key, [done](const AckResult& r) { done(r); });
  });
}

// co_await: resumes after `delay`, on the loop.
inline auto sleep(Context& ctx, std::chrono::milliseconds delay) {
  return detail::awaiter<bool>([&ctx, delay](std::function<void(bool)> done) {
    ctx.set_timeout(delay, [done] { done(true); });
  });
}

}  // namespace co
}  // namespace clutch
