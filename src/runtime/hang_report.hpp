// What a child offers the master's hang detection: a heartbeat while its loop turns, and a
// backtrace written to its log from a signal handler when the master finds the loop stuck.
#pragma once

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <functional>

namespace clutch::runtime {

// Installs the handler for hang_backtrace_signal(): it writes "clutch: backtrace of pid N ..." and
// the frames of the thread it interrupted (the loop's, in a single-threaded process) to stderr.
// Symbol names need the executable's symbols exported (clutch links apps with -rdynamic).
void install_backtrace_on_signal();

// Calls `beat` every `interval` on the loop, so the master can tell a stuck loop from an idle
// one. Lives as long as the loop runs.
class Heartbeat {
 public:
  Heartbeat(asio::io_context& io, std::chrono::milliseconds interval, std::function<void()> beat)
      : timer_(io), interval_(interval), beat_(std::move(beat)) {}
  void start() { arm(); }

 private:
  void arm();

  asio::steady_timer timer_;
  std::chrono::milliseconds interval_;
  std::function<void()> beat_;
};

}  // namespace clutch::runtime
