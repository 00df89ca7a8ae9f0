// Where a PostgreSQL consumer's next claim starts in the queue's id order. Pure (no I/O), so its
// rules are unit-tested apart from the database.
//
// Why: a consumer claims ahead while its earlier batches are still in flight, so the head of the
// table is rows it has leased itself (and rows acknowledged but not yet vacuumed). A claim that
// scans from the first id walks past all of them on every fetch; one that starts after the
// highest id this consumer claimed skips them. What may be visible below that point is looked at
// by a claim from the start: at least every `every` (a lease that expired, another instance's
// release, a row whose transaction committed after a later id was claimed), and at once after
// anything this consumer made visible itself (a release, a recovery, a reconnection, a
// take-over). So a message below the cursor waits at most `every` longer, and none is skipped.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace clutch::mq {

class ClaimCursor {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ClaimCursor(Clock::duration every) : every_(every) {}

  // The id after which the next claim looks (0: from the start, which resets the period).
  std::int64_t next_start(Clock::time_point now) {
    if (!rescan_ && now < scan_from_start_at_) return highest_;
    rescan_ = false;
    scan_from_start_at_ = now + every_;
    return 0;
  }
  // A claim's highest id.
  void claimed(std::int64_t highest) { highest_ = std::max(highest_, highest); }
  // Something below the cursor may be visible now: the next claim starts from the first id.
  void rescan() { rescan_ = true; }
  // A retry of a claimed message comes due at `when`: a claim from the start by then.
  void rescan_by(Clock::time_point when) {
    scan_from_start_at_ = std::min(scan_from_start_at_, when);
  }

 private:
  Clock::duration every_;
  std::int64_t highest_ = 0;
  bool rescan_ = true;
  Clock::time_point scan_from_start_at_{};
};

}  // namespace clutch::mq
