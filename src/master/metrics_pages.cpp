// What the metrics listener serves: the cluster as the master knows it (processes, restarts,
// memory, CPU, the messenger's routing), and the health and readiness probes.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "master/proc_stats.hpp"
#include "master/prometheus_text.hpp"
#include "master/supervisor.hpp"

namespace clutch::master {

void Supervisor::open_metrics_listener() {
  if (config_.metrics_listen.empty()) return;
  std::string error;
  if (!metrics_.open(config_.metrics_listen, error)) {
    // Like the control socket: said once, the cluster runs without it.
    spdlog::warn("metrics listener not opened: {}", error);
  }
}

MetricsServer::Page Supervisor::metrics_page(const MetricsServer::Request& request) {
  const std::string& path = request.path;
  if (request.method == "POST") return dashboard_action(request);
  if (path == "/metrics") {
    return {200, "text/plain; version=0.0.4; charset=utf-8", metrics_text()};
  }
  if (path == "/healthz") return {200, "text/plain", "ok\n"};
  if (path == "/" || path == "/index.html")
    return {200, "text/html; charset=utf-8", dashboard_page()};
  if (path == "/api/status") return {200, "application/json", dashboard_json().dump()};
  if (path == "/readyz") {
    std::string state = cluster_state();
    // Reloading and scaling keep serving; starting, degraded and stopping do not count as ready.
    bool ready = state == "ready" || state == "reloading" || state == "scaling";
    return {ready ? 200 : 503, "text/plain", state + "\n"};
  }
  return {404, "text/plain", "not found: /, /api/status, /metrics, /healthz, /readyz\n"};
}

std::string Supervisor::metrics_text() {
  PrometheusText m;
  std::string state = cluster_state();
  m.family("clutch_cluster_ready", "gauge", "1 when every process is ready and none is crashing.");
  m.sample("clutch_cluster_ready", state == "ready" ? 1 : 0);
  m.family("clutch_cluster_state", "gauge", "The cluster's state, 1 for the current one.");
  for (const char* s : {"starting", "ready", "degraded", "reloading", "scaling", "upgrading",
                        "draining", "stopping"})
    m.sample("clutch_cluster_state", state == s ? 1 : 0, {{"state", s}});
  m.family("clutch_reload_generation", "gauge", "Rolling reloads started since the master began.");
  m.sample("clutch_reload_generation", reload_.generation);
  m.family("clutch_workers_desired", "gauge", "Worker slots the master keeps filled.");
  m.sample("clutch_workers_desired", static_cast<double>(worker_slots_.size()));
  // Connections the kernel holds for the workers (handshake done, not accepted yet): a queue
  // that grows means the workers cannot keep up. Summed over reuse_port's sockets.
  unsigned waiting = 0, limit = 0;
  bool tcp = false;
  auto add_queue = [&](int fd) {
    unsigned w = 0, l = 0;
    if (fd >= 0 && accept_queue(fd, w, l)) tcp = true, waiting += w, limit += l;
  };
  if (config_.reuse_port) {
    for (int fd : slot_listen_fds_) add_queue(fd);
  } else {
    add_queue(listen_.fd);
  }
  if (tcp) {
    m.family("clutch_http_accept_queue", "gauge",
             "Connections waiting in the kernel for a worker to accept them.");
    m.sample("clutch_http_accept_queue", waiting);
    m.family("clutch_http_accept_queue_limit", "gauge",
             "The listening socket's accept queue size.");
    m.sample("clutch_http_accept_queue_limit", limit);
  }

  auto slots = [&](auto&& per_slot) {
    per_slot(agent_slot_, std::string("agent"), std::string("agent"));
    for (const Slot& s : worker_slots_) per_slot(s, std::string("worker"), std::to_string(s.index));
  };
  m.family("clutch_process_up", "gauge", "1 while the slot's process is ready.");
  slots([&](const Slot& s, const std::string& role, const std::string& slot) {
    Child* c = children_.find(s.current);
    m.sample("clutch_process_up", c != nullptr && c->state == ChildState::kReady ? 1 : 0,
             {{"role", role}, {"slot", slot}});
  });
  m.family("clutch_process_restarts_total", "counter",
           "Processes started in the slot after its first.");
  slots([&](const Slot& s, const std::string& role, const std::string& slot) {
    m.sample("clutch_process_restarts_total", s.restarts, {{"role", role}, {"slot", slot}});
  });
  m.family("clutch_process_resident_memory_bytes", "gauge",
           "Resident memory of the slot's process.");
  slots([&](const Slot& s, const std::string& role, const std::string& slot) {
    Child* c = children_.find(s.current);
    m.sample("clutch_process_resident_memory_bytes",
             c != nullptr ? static_cast<double>(sampled(*c).rss_bytes) : 0,
             {{"role", role}, {"slot", slot}});
  });
  m.family("clutch_process_cpu_seconds_total", "counter",
           "CPU time (user and system) of the slot's current process.");
  slots([&](const Slot& s, const std::string& role, const std::string& slot) {
    Child* c = children_.find(s.current);
    m.sample("clutch_process_cpu_seconds_total", c != nullptr ? sampled(*c).cpu_seconds : 0,
             {{"role", role}, {"slot", slot}});
  });
  m.family("clutch_process_messages_in_flight", "gauge",
           "Acknowledged messages handed to the process and not yet acknowledged.");
  slots([&](const Slot& s, const std::string& role, const std::string& slot) {
    Child* c = children_.find(s.current);
    m.sample("clutch_process_messages_in_flight", c != nullptr ? c->unacked : 0,
             {{"role", role}, {"slot", slot}});
  });

  m.family("clutch_messenger_messages_total", "counter", "Messages the master routed, by route.");
  const auto& routed = router_.routed();
  for (messaging::Route r :
       {messaging::Route::kBroadcast, messaging::Route::kApp, messaging::Route::kOthers,
        messaging::Route::kAgent, messaging::Route::kRandom, messaging::Route::kPid}) {
    m.sample("clutch_messenger_messages_total",
             static_cast<double>(routed[static_cast<std::size_t>(r)]),
             {{"route", std::string(messaging::to_string(r))}});
  }
  m.family("clutch_messenger_unacknowledged", "gauge",
           "Acknowledged messages held or in flight in the master.");
  m.sample("clutch_messenger_unacknowledged", static_cast<double>(router_.unacknowledged()));
  m.family("clutch_messenger_duplicates_absorbed_total", "counter",
           "Keyed resends answered from a message already held, running or handled.");
  m.sample("clutch_messenger_duplicates_absorbed_total",
           static_cast<double>(router_.duplicates_absorbed()));
  m.family("clutch_messenger_dropped_without_sender_total", "counter",
           "Acknowledged messages dropped because every sender died before a worker took them.");
  m.sample("clutch_messenger_dropped_without_sender_total",
           static_cast<double>(router_.dropped_without_sender()));
  m.family("clutch_messenger_refused_total", "counter",
           "Messages refused for a worker that was not reading (its queue full).");
  m.sample("clutch_messenger_refused_total", static_cast<double>(router_.refused()));

  m.family("clutch_master_resident_memory_bytes", "gauge", "Resident memory of the master.");
  m.sample("clutch_master_resident_memory_bytes", static_cast<double>(resident_bytes(pid_)));
  m.family("clutch_master_cpu_seconds_total", "counter", "CPU time of the master.");
  m.sample("clutch_master_cpu_seconds_total", cpu_seconds(pid_));
  // What the children report: the runtime's figures (HTTP, schedules, queues, messages handled)
  // and the application's own, summed over the cluster.
  app_metrics_.render(m);
  return m.text();
}

}  // namespace clutch::master
