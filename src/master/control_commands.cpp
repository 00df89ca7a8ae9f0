// What the control socket's commands do: status, reload (answered with its outcome), stop,
// scale (answered once the workers are ready or drained). Scaling goes through the same paths as
// crashes and reloads: new slots are filled by spawn() and the restart policy, retired ones are
// drained with terminate() like any stop.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <asio/post.hpp>

#include <cmath>

#include "master/proc_stats.hpp"
#include "master/supervisor.hpp"

namespace clutch::master {
namespace {

std::string_view state_name(const Child& c) {
  if (c.hung) return "hung";
  switch (c.state) {
    case ChildState::kStarting:
      return "starting";
    case ChildState::kReady:
      return "ready";
    case ChildState::kDraining:
      return "draining";
    case ChildState::kGone:
      return "gone";
  }
  return "unknown";
}

}  // namespace

void Supervisor::open_control_socket() {
  if (config_.control_socket == "off") return;
  std::string path =
      config_.control_socket.empty() ? default_control_path(app_name_) : config_.control_socket;
  std::string error;
  if (control_.open(path, error)) return;
  if (config_.control_socket.empty() && !path.empty()) {
    // The default name is taken by another cluster of this app: this one's pid makes it unique.
    std::string own = path.substr(0, path.size() - 5) + fmt::format("-{}.sock", pid_);
    if (control_.open(own, error)) return;
  }
  // Said once; the cluster runs without it (clutchctl cannot reach it, signals still work).
  spdlog::warn("control socket not opened ({}): clutchctl cannot reach this cluster", error);
}

Activity Supervisor::activity() const {
  return {phase_ == Phase::kRunning && !draining_for_balancers_, cluster_state(), reload_.active,
          scale_.timer != nullptr, upgrade_.pid != 0};
}

std::string Supervisor::cluster_state() const {
  switch (phase_) {
    case Phase::kStarting:
      return "starting";
    case Phase::kStopping:
      return "stopping";
    case Phase::kRunning:
      break;
  }
  if (draining_for_balancers_) return "draining";
  if (upgrade_.pid != 0) return "upgrading";
  if (reload_.active) return "reloading";
  if (scale_.timer) return "scaling";
  if (agent_slot_.current == 0 || agent_slot_.backoff.crashing()) return "degraded";
  for (const Slot& s : worker_slots_) {
    if (s.current == 0 || s.backoff.crashing()) return "degraded";
  }
  return "ready";
}

Child& Supervisor::sampled(Child& c) {
  auto now = Clock::now();
  if (now - c.sampled_at > std::chrono::milliseconds(250)) {
    c.rss_bytes = resident_bytes(c.pid);
    c.cpu_seconds = cpu_seconds(c.pid);
    c.sampled_at = now;
  }
  return c;
}

nlohmann::json Supervisor::status_json() {
  nlohmann::json processes = nlohmann::json::array();
  auto row = [&](const Slot& slot) {
    nlohmann::json r = {{"role", slot.role == Role::kAgent ? "agent" : "worker"},
                        {"slot", slot.role == Role::kAgent ? -1 : slot.index},
                        {"restarts", slot.restarts},
                        {"last_exit", slot.last_exit}};
    Child* c = children_.find(slot.current);
    if (c == nullptr) {
      r.update({{"pid", 0},
                {"state", slot.retired ? "retired" : "backing off"},
                {"uptime_ms", 0},
                {"rss_bytes", 0},
                {"cpu_seconds", 0},
                {"in_flight", 0},
                {"handled", 0},
                {"http_requests", 0}});
      return processes.push_back(std::move(r));
    }
    sampled(*c);
    std::size_t rss = c->rss_bytes;
    double cpu = c->cpu_seconds;
    r.update(
        {{"pid", c->pid},
         {"state", slot.retired ? "draining" : state_name(*c)},
         {"uptime_ms", std::chrono::duration_cast<Millis>(Clock::now() - c->started_at).count()},
         {"rss_bytes", rss},
         {"cpu_seconds", cpu},
         {"in_flight", c->unacked},
         {"handled", app_metrics_.process_total(c->pid, "clutch_messenger_handled_total")},
         {"http_requests", app_metrics_.process_total(c->pid, "clutch_http_requests_total")}});
    // The p99 of its requests' queue time lately (null: none in the window), "at most".
    auto p99 = c->queue_recent.quantile(0.99);
    r["queue_p99_seconds"] = p99 ? nlohmann::json(std::isinf(*p99) ? -1.0 : *p99) : nullptr;
    processes.push_back(std::move(r));
  };
  row(agent_slot_);
  for (const Slot& s : worker_slots_) row(s);
  std::size_t rss = resident_bytes(pid_);
  double cpu = cpu_seconds(pid_);
  return {{"ok", true},
          {"app", app_name_},
          {"master", pid_},
          {"state", cluster_state()},
          {"generation", reload_.generation},
          {"uptime_ms", std::chrono::duration_cast<Millis>(Clock::now() - started_at_).count()},
          {"listening", endpoint_text(config_.host, listen_.port)},
          {"master_rss_bytes", rss},
          {"master_cpu_seconds", cpu},
          {"log_dir", config_.log_dir},
          {"log_format", config_.log_format},
          {"processes", std::move(processes)}};
}

void Supervisor::on_control_request(const nlohmann::json& request, ControlServer::Answer answer) {
  std::string cmd = request["cmd"];
  if (cmd == "status") return answer(status_json(), true);
  if (cmd == "ping") return answer({{"ok", true}}, true);
  if (cmd == "reload") {
    if (std::string refused = refusal(activity()); !refused.empty())
      return answer({{"ok", false}, {"error", refused}}, true);
    reload_waiters_.push_back(answer);
    reload("clutchctl reload");
    return;
  }
  if (cmd == "stop") {
    bool now = request.value("now", false);
    // The pid and the stop's bound let clutchctl wait until this process is gone.
    answer({{"ok", true},
            {"stopping", now ? "now" : "gracefully"},
            {"master", getpid()},
            {"kill_timeout_ms", config_.kill_timeout.count()}},
           true);
    if (now) {
      spdlog::warn("clutchctl stop --now: stopping at once");
      phase_ = Phase::kStopping;
      force_stop();
    } else {
      stop_after_grace(kExitOk, "clutchctl stop");
    }
    return;
  }
  if (cmd == "restart") return restart(request, std::move(answer));
  if (cmd == "upgrade") return upgrade(std::move(answer));
  // Schedules and queues live in the agent: it answers these itself.
  for (const char* agent_cmd :
       {"jobs", "job-run", "queues", "queue-dead", "queue-requeue", "queue-purge"}) {
    if (cmd == agent_cmd) return ask_agent(request, std::move(answer));
  }
  if (cmd == "scale") {
    std::size_t current = worker_slots_.size();
    long long target = static_cast<long long>(current);
    if (request.contains("workers") && request["workers"].is_number_integer()) {
      target = request["workers"].get<long long>();
    } else if (request.contains("delta") && request["delta"].is_number_integer()) {
      target += request["delta"].get<long long>();
    } else {
      return answer({{"ok", false}, {"error", "scale needs \"workers\": N or \"delta\": +-N"}},
                    true);
    }
    if (std::string refused = scale_target_refusal(target); !refused.empty())
      return answer({{"ok", false}, {"error", refused}}, true);
    return scale(static_cast<std::size_t>(target), std::move(answer));
  }
  answer({{"ok", false},
          {"error",
           fmt::format(
               "unknown command '{}' (status, reload, upgrade, stop, scale, restart, ping, jobs, "
               "job-run, queues, queue-dead, queue-requeue, queue-purge)",
               cmd)}},
         true);
}

void Supervisor::scale(std::size_t workers, ControlServer::Answer answer) {
  std::string refused = refusal(activity());
  if (refused.empty() && config_.reuse_port && workers > slot_listen_fds_.size()) {
    refused = fmt::format(
        "with reuse_port the cluster cannot grow past the {} sockets bound at "
        "start",
        slot_listen_fds_.size());
  }
  if (!refused.empty()) return answer({{"ok", false}, {"error", refused}}, true);
  std::size_t from = worker_slots_.size();
  spdlog::info("scaling from {} to {} worker(s)", from, workers);
  scale_.target = workers;
  scale_.waiters.push_back(std::move(answer));
  // Answered when done, or, for a worker that cannot start, once a start could have succeeded.
  scale_.timer = std::make_unique<asio::steady_timer>(io_);
  scale_.timer->expires_after(config_.startup_timeout + config_.kill_timeout);
  scale_.timer->async_wait([this](const asio::error_code& ec) {
    if (!ec) check_scale_done(true);
  });
  for (std::size_t i = from; i < workers; ++i) {
    worker_slots_.push_back(make_slot(Role::kWorker, static_cast<unsigned>(i)));
    worker_slots_.back().added = true;
  }
  spawn_added_slots(from);
  // Scaling down drains the highest slots, as a stop would.
  for (std::size_t i = workers; i < from; ++i) {
    Slot& slot = worker_slots_[i];
    slot.retired = true;
    slot.restart_timer->cancel();
    if (Child* c = children_.find(slot.current)) terminate(*c);
  }
  remove_retired_slots();
  check_scale_done();
}

void Supervisor::spawn_added_slots(std::size_t index) {
  // One spawn per loop turn: a spawn costs the master a millisecond or two, and 64 in a row would
  // keep status requests, scrapes and routing waiting for all of them.
  if (phase_ != Phase::kRunning || index >= worker_slots_.size()) return;
  Slot& slot = worker_slots_[index];
  if (slot.added && !slot.retired && slot.current == 0) spawn(slot);
  asio::post(io_, [this, index] { spawn_added_slots(index + 1); });
}

void Supervisor::restart(const nlohmann::json& request, ControlServer::Answer answer) {
  // The target: {"slot": N} (a worker slot), {"slot": "agent"}, or {"pid": P}.
  Child* child = nullptr;
  if (request.contains("pid") && request["pid"].is_number_integer()) {
    child = children_.find(request["pid"].get<int>());
  } else if (request.contains("slot") && request["slot"] == "agent") {
    child = children_.find(agent_slot_.current);
  } else if (request.contains("slot") && request["slot"].is_number_integer()) {
    auto index = request["slot"].get<long long>();
    if (index >= 0 && index < static_cast<long long>(worker_slots_.size()))
      child = children_.find(worker_slots_[static_cast<std::size_t>(index)].current);
  }
  std::string refused = refusal(activity());
  if (refused.empty() && (child == nullptr || child->state != ChildState::kReady ||
                          child->reload_candidate || slot_of(*child).retired)) {
    refused = "no ready process there (give a worker slot, 'agent' or a pid of the cluster)";
  }
  if (refused.empty() && slot_of(*child).replacing) refused = "its replacement is already starting";
  if (!refused.empty()) return answer({{"ok", false}, {"error", refused}}, true);
  int key = child->is_worker() ? child->slot : -1;
  restart_waiters_[key].push_back(std::move(answer));
  // The same path as a replacement over max_rss: a worker's successor is ready before it drains.
  replace_gracefully(*child, "clutchctl restart");
}

void Supervisor::restart_done(int slot, bool ok, const std::string& outcome) {
  auto it = restart_waiters_.find(slot);
  if (it == restart_waiters_.end()) return;
  nlohmann::json answer = ok ? nlohmann::json{{"ok", true}, {"outcome", outcome}}
                             : nlohmann::json{{"ok", false}, {"error", outcome}};
  for (auto& waiter : std::exchange(it->second, {})) waiter(answer, true);
  restart_waiters_.erase(it);
}

void Supervisor::remove_retired_slots() {
  // Only from the end, and only once their process is gone (children refer to slots by index).
  while (!worker_slots_.empty() && worker_slots_.back().retired &&
         children_.find(worker_slots_.back().current) == nullptr) {
    worker_slots_.pop_back();
  }
  router_.targets_changed();
}

void Supervisor::check_scale_done(bool timed_out) {
  if (!scale_.timer) return;
  std::size_t ready = 0;
  bool retiring = false;
  for (const Slot& s : worker_slots_) {
    if (s.retired) {
      retiring = true;
      continue;
    }
    Child* c = children_.find(s.current);
    if (c != nullptr && c->state == ChildState::kReady) ++ready;
  }
  bool done = !retiring && ready == scale_.target && worker_slots_.size() == scale_.target;
  if (!done && !timed_out) return;
  nlohmann::json outcome =
      done
          ? nlohmann::json{{"ok", true}, {"workers", scale_.target}}
          : nlohmann::json{
                {"ok", false},
                {"error", fmt::format("{} of {} worker(s) ready{} after {} ms; the "
                                      "restart policy keeps trying",
                                      ready, scale_.target, retiring ? ", some still draining" : "",
                                      (config_.startup_timeout + config_.kill_timeout).count())}};
  if (done) spdlog::info("scaled to {} worker(s)", scale_.target);
  for (auto& waiter : std::exchange(scale_.waiters, {})) waiter(outcome, true);
  scale_.timer->cancel();
  scale_.timer.reset();
  router_.announce_members();
}

void Supervisor::reload_finished(bool ok, const std::string& outcome) {
  nlohmann::json answer = ok ? nlohmann::json{{"ok", true}, {"outcome", outcome}}
                             : nlohmann::json{{"ok", false}, {"error", outcome}};
  for (auto& waiter : std::exchange(reload_waiters_, {})) waiter(answer, true);
}

void Supervisor::reload_progress(const std::string& step) {
  for (auto& waiter : reload_waiters_) waiter({{"progress", step}}, false);
}

}  // namespace clutch::master
