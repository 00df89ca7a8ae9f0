// Sends this process's metrics to the master: at start, once a second when they changed, and a
// last time at the end of a graceful stop, so a stop loses no count.
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <string>

#include "messaging/control_ops.hpp"
#include "runtime/messenger_client.hpp"
#include "runtime/metrics_access.hpp"
#include "runtime/process_context.hpp"

namespace clutch::runtime {

class MetricsReporter {
 public:
  static constexpr std::chrono::milliseconds kInterval{1000};

  MetricsReporter(ProcessContext& ctx, MessengerClient& messenger, std::size_t max_size)
      : ctx_(ctx), messenger_(messenger), max_size_(max_size) {}

  void start() {
    report();
    ctx_.set_interval(kInterval, [this] { report(); });
  }

  void report() {
    std::string now = detail::MetricsAccess::snapshot(ctx_.metrics());
    if (now == last_) return;
    if (now.size() > max_size_) {
      // Too many series (a label with unbounded values?): said once, the old figures stay.
      if (!warned_)
        spdlog::error("metrics not reported: {} bytes of series is over max_message_size",
                      now.size());
      warned_ = true;
      return;
    }
    messenger_.send_control(messaging::kOpMetrics, now);
    last_ = std::move(now);
  }

 private:
  ProcessContext& ctx_;
  MessengerClient& messenger_;
  std::size_t max_size_;
  std::string last_;
  bool warned_ = false;
};

}  // namespace clutch::runtime
