// Recycling: a child past a limit is replaced the way a rolling reload replaces a worker, one
// slot only: the new process is made ready first, then the old one drains, so no request fails.
// The agent, a singleton, restarts. Two limits: max_rss (a leak, a cache without bound) and, for
// workers, max_requests (gunicorn's: what fragmentation or a slow leak cannot outgrow).
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <random>

#include "master/proc_stats.hpp"
#include "master/recycling.hpp"
#include "master/supervisor.hpp"

namespace clutch::master {
namespace {

std::string mib(std::size_t bytes) {
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
}

}  // namespace

uint64_t request_limit(uint64_t max_requests, uint64_t jitter, uint64_t random) {
  if (max_requests == 0) return 0;
  uint64_t spread = jitter == UINT64_MAX ? random : random % (jitter + 1);
  return max_requests + std::min(spread, UINT64_MAX - max_requests);
}

uint64_t Supervisor::draw_request_limit() {
  static std::mt19937_64 random{std::random_device{}()};
  return request_limit(config_.max_requests, config_.max_requests_jitter, random());
}

bool Supervisor::may_recycle(Child& c) {
  if (phase_ != Phase::kRunning || reload_.active) return false;
  if (c.state != ChildState::kReady || c.term_sent || c.reload_candidate) return false;
  Slot& slot = slot_of(c);
  if (slot.current != c.pid || slot.replacing) return false;
  // A replacement that failed is not tried again at once (it would fail the same way).
  return Clock::now() - slot.replace_failed_at >= std::chrono::seconds(30);
}

void Supervisor::check_request_limit(Child& c) {
  if (c.request_limit == 0 || !c.is_worker() || !may_recycle(c)) return;
  double served = app_metrics_.process_total(c.pid, "clutch_http_requests_total");
  if (served < static_cast<double>(c.request_limit)) return;
  replace_gracefully(
      c, fmt::format("served {} requests (max_requests {}, this worker's limit {})",
                     static_cast<uint64_t>(served), config_.max_requests, c.request_limit));
}

void Supervisor::watch_memory() {
  memory_timer_.expires_after(std::chrono::seconds(1));
  memory_timer_.async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    children_.for_each([&](Child& c) {
      if (!may_recycle(c)) return;
      std::size_t rss = resident_bytes(c.pid);
      if (rss > config_.max_rss) {
        replace_gracefully(c, fmt::format("resident memory {} is over max_rss ({})", mib(rss),
                                          mib(config_.max_rss)));
      }
    });
    watch_memory();
  });
}

void Supervisor::replace_gracefully(Child& c, const std::string& why) {
  Slot& slot = slot_of(c);
  if (c.role == Role::kAgent) {
    spdlog::warn("{}: {}: restarting it", c.describe(), why);
    agent_restart_reason_ = why;
    terminate(c);  // on_exit starts the next one at once
    return;
  }
  spdlog::warn("{}: {}: starting its replacement, then draining it", c.describe(), why);
  slot.replacing = true;
  if (Child* candidate = spawn(slot, true)) {
    candidate->replacing_because = why;
  } else {
    slot.replacing = false;
    slot.replace_failed_at = Clock::now();
  }
}

void Supervisor::replacement_ready(Child& candidate) {
  Slot& slot = slot_of(candidate);
  slot.replacing = false;
  pid_t old = take_over_slot(candidate);
  std::string outcome = fmt::format("worker {} replaced (pid {} -> {}): {}", slot.index, old,
                                    candidate.pid, candidate.replacing_because);
  spdlog::info("{}", outcome);
  restart_done(slot.index, true, outcome);
  if (Child* previous = children_.find(old)) terminate(*previous);
}

}  // namespace clutch::master
