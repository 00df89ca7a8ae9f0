// Lets the runtime's own features (the scheduler, the queue consumer) send and handle actions
// under the reserved `schedule:` and `mq:` prefixes, which user code gets a MessengerError for.
#pragma once

#include "clutch/messenger.hpp"

namespace clutch::detail {

class ReservedScope {
 public:
  explicit ReservedScope(Messenger& m) : m_(m), was_(m.reserved_allowed_) {
    m_.reserved_allowed_ = true;
  }
  ~ReservedScope() { m_.reserved_allowed_ = was_; }
  ReservedScope(const ReservedScope&) = delete;
  ReservedScope& operator=(const ReservedScope&) = delete;

 private:
  Messenger& m_;
  bool was_;
};

}  // namespace clutch::detail
