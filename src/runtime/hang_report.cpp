#include "runtime/hang_report.hpp"

#include "common/signals.hpp"

#include <execinfo.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>

namespace clutch::runtime {
namespace {

void write_all(const char* text, std::size_t size) {
  while (size > 0) {
    ssize_t n = write(STDERR_FILENO, text, size);
    if (n <= 0) return;
    text += n;
    size -= static_cast<std::size_t>(n);
  }
}

void on_backtrace_signal(int) {
  // Async-signal-safe only: write(2), a stack buffer, and backtrace(), warmed up at install time
  // so that it does not load libgcc (and allocate) here.
  int saved_errno = errno;
  char header[128];
  int length =
      std::snprintf(header, sizeof header,
                    "clutch: backtrace of pid %d (its loop is stuck; asked by the master):\n",
                    static_cast<int>(getpid()));
  if (length > 0) write_all(header, static_cast<std::size_t>(length));
  void* frames[64];
  int count = backtrace(frames, 64);
  backtrace_symbols_fd(frames, count, STDERR_FILENO);
  write_all("clutch: end of backtrace\n", 25);
  errno = saved_errno;
}

}  // namespace

void install_backtrace_on_signal() {
  void* warm[1];
  backtrace(warm, 1);
  struct sigaction action {};
  action.sa_handler = on_backtrace_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(hang_backtrace_signal(), &action, nullptr);
}

void Heartbeat::arm() {
  timer_.expires_after(interval_);
  timer_.async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    beat_();
    arm();
  });
}

}  // namespace clutch::runtime
