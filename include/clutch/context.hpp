// What an agent's or a worker's setup receives: its identity, its messenger, timers and the
// lifecycle hooks. One per process.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "clutch/config.hpp"
#include "clutch/messenger.hpp"
#include "clutch/metrics.hpp"

namespace clutch {

using TimerId = uint64_t;

class Context {
 public:
  virtual ~Context() = default;

  virtual Role role() const = 0;
  virtual int pid() const = 0;
  // The master's pid (for logs and process tools; the master takes no messages).
  virtual int master_pid() const = 0;
  // The worker's slot, 0..workers-1 (kept by its replacements); -1 in the agent.
  virtual int worker_index() const = 0;
  virtual const Config& config() const = 0;
  // True for a process started to replace one that died (not part of the first start).
  virtual bool replacement() const = 0;
  virtual Messenger& messenger() = 0;
  // This process's metrics; the master serves them summed over the cluster (clutch/metrics.hpp).
  virtual Metrics& metrics() = 0;

  // The listening socket the master bound (workers only; -1 in the agent) and its real port.
  virtual int listen_fd() const = 0;
  virtual int port() const = 0;

  // Runs `fn` once after `delay` / every `period`, on this process's loop.
  virtual TimerId set_timeout(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
  virtual TimerId set_interval(std::chrono::milliseconds period, std::function<void()> fn) = 0;
  virtual void cancel_timer(TimerId id) = 0;
  // Runs `fn` on the loop after the current handler. May be called from any thread (a thread of
  // your own hands its results to the loop this way).
  virtual void post(std::function<void()> fn) = 0;

  // Once, when the whole cluster is ready (the clutch:ready message).
  virtual void on_ready(std::function<void()> fn) = 0;
  // On a graceful stop, after in-flight messages: finish your work, then call done(). The process
  // exits when every hook has called done() (or the master's kill_timeout runs out).
  virtual void on_stop(std::function<void(std::function<void()> done)> fn) = 0;
  // True once this process has been asked to stop.
  virtual bool stopping() const = 0;

  // The Asio io_context of this process (an asio::io_context*), for code that wants Asio itself;
  // see clutch/asio.hpp.
  virtual void* native_loop() = 0;
};

}  // namespace clutch
