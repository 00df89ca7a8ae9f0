// A call from the caller's loop to a source's own thread that waits for the answer: the
// operator's dead-letter commands and a producer's publish. Bounded: a thread stuck on a hung
// broker costs the caller `wait`, and the call, if it has not started by then, never runs.
#pragma once

#include <atomic>
#include <chrono>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <utility>

namespace clutch::mq {

// `post(job)` queues `job(thread_side&)` on the thread; `fn(thread_side&)` computes the answer.
// Returns the answer, nullopt on timeout, or rethrows what `fn` threw. With `rethrow_there`, the
// exception is also rethrown on the thread (whose loop then treats the connection as broken).
template <typename T, typename Post, typename Fn>
std::optional<T> ask_thread(Post&& post, Fn fn, std::chrono::milliseconds wait,
                            bool rethrow_there = false) {
  auto promise = std::make_shared<std::promise<T>>();
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  std::future<T> answer = promise->get_future();
  post([fn = std::move(fn), promise, cancelled, rethrow_there](auto& thread_side) {
    if (*cancelled) return;  // the caller gave up: do not act behind its back
    try {
      promise->set_value(fn(thread_side));
    } catch (...) {
      promise->set_exception(std::current_exception());
      if (rethrow_there) throw;
    }
  });
  if (answer.wait_for(wait) != std::future_status::ready) {
    *cancelled = true;
    return std::nullopt;
  }
  return answer.get();
}

}  // namespace clutch::mq
