// The rolling reload, one worker slot at a time: start the replacement (a fresh exec, so a new
// binary on disk is picked up), wait until it is ready, then drain the old one; N workers accept
// throughout. The agent, a singleton, is stopped and then started anew at the end.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "master/admission.hpp"
#include "master/sd_notify.hpp"
#include "master/supervisor.hpp"
#include "messaging/control_ops.hpp"

namespace clutch::master {

void Supervisor::reload(const std::string& why) {
  // SIGHUP, clutchctl and the dashboard alike (they answer with the same refusal first).
  if (std::string refused = refusal(activity()); !refused.empty()) {
    spdlog::warn("reload ({}) refused: {}", why, refused);
    return;
  }
  reload_ = ReloadState{true, 0, false, Clock::now(), reload_.generation + 1};
  notify(fmt::format("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading (generation {})",
                     monotonic_usec(), reload_.generation));
  spdlog::info("reload {} ({}): replacing {} worker(s) one by one, then the agent",
               reload_.generation, why, worker_slots_.size());
  reload_next();
}

void Supervisor::reload_next() {
  if (!reload_.active) return;
  if (reload_.next_slot < worker_slots_.size()) {
    Slot& slot = worker_slots_[reload_.next_slot];
    if (slot.current == 0) {
      // The slot is empty (its worker is crash-looping): the restart policy fills it anyway.
      ++reload_.next_slot;
      return reload_next();
    }
    spawn(slot, true);
    return;
  }
  if (Child* agent = children_.agent(); agent != nullptr && !reload_.agent_restarting) {
    reload_.agent_restarting = true;
    spdlog::info("reload {}: workers replaced; restarting the agent", reload_.generation);
    terminate(*agent);  // on_exit restarts it at once (a long-lived agent is not crashing)
    return;
  }
  reload_.active = false;
  announce_members_now();  // the last steps' news, not left waiting for the timer
  std::vector<pid_t> workers;
  for (const Slot& s : worker_slots_) workers.push_back(s.current);
  std::string outcome =
      fmt::format("reload {} complete in {} ms: agent {}, workers [{}]", reload_.generation,
                  std::chrono::duration_cast<Millis>(Clock::now() - reload_.started).count(),
                  agent_slot_.current, fmt::join(workers, ","));
  spdlog::info("{}", outcome);
  notify(fmt::format("READY=1\nSTATUS=serving on {} with {} workers (generation {})",
                     endpoint_text(config_.host, listen_.port), worker_slots_.size(),
                     reload_.generation));
  reload_finished(true, outcome);
}

pid_t Supervisor::take_over_slot(Child& candidate) {
  candidate.reload_candidate = false;
  Slot& slot = slot_of(candidate);
  pid_t old = slot.current;
  slot.current = candidate.pid;
  router_.targets_changed();
  // The newcomer gets the whole list before it is ready; the others hear of the change.
  router_.announce_members(&candidate);
  announce_members_soon();
  router_.send_runtime(candidate, messaging::kActionReady, {});
  return old;
}

void Supervisor::reload_candidate_ready(Child& candidate) {
  Slot& slot = slot_of(candidate);
  pid_t old = take_over_slot(candidate);
  std::string step = fmt::format("reload {}: worker {} replaced (pid {} -> {})", reload_.generation,
                                 slot.index, old, candidate.pid);
  spdlog::info("{}", step);
  reload_progress(step);
  if (Child* previous = children_.find(old)) terminate(*previous);
  ++reload_.next_slot;
  reload_next();
}

void Supervisor::abort_reload(const std::string& error) {
  if (!reload_.active) return;
  reload_.active = false;
  announce_members_now();
  std::string outcome = fmt::format("reload {} failed: {}; the running generation keeps serving",
                                    reload_.generation, error);
  spdlog::error("{}", outcome);
  notify(fmt::format("READY=1\nSTATUS={}", outcome));
  reload_finished(false, outcome);
}

}  // namespace clutch::master
