// The master's lifecycle: start the agent, then the workers, announce the cluster ready, restart
// what dies (backing off on crash loops), and stop gracefully on a signal. Signal handlers only
// queue work for the loop (Asio's signal_set), as nginx's set flags for its cycle.
#pragma once

#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/signal_set.hpp>
#include <asio/streambuf.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "clutch/config.hpp"
#include "master/admission.hpp"
#include "master/child.hpp"
#include "master/control_server.hpp"
#include "master/inherited_sockets.hpp"
#include "master/listen_socket.hpp"
#include "master/metrics_aggregate.hpp"
#include "master/metrics_server.hpp"
#include "master/router.hpp"
#include "master/sd_notify.hpp"

namespace clutch::master {

// Exit codes of the master (documented in docs/OPERATIONS.md).
inline constexpr int kExitOk = 0;              // stopped gracefully
inline constexpr int kExitStartFailed = 1;     // a child or the listening socket failed the start
inline constexpr int kExitUsage = 2;           // bad command line or configuration
inline constexpr int kExitForced = 3;          // a second SIGTERM/SIGINT stopped it at once
inline constexpr int kExitRestartLimit = 1;    // a slot died more than max_restarts times
inline constexpr int kExitInternalError = 70;  // a bug of clutch's escaped the loop (EX_SOFTWARE)

// "exited with code 3", "was killed by signal 9 (Killed)".
std::string exit_description(int status);

// The dashboard's page (dashboard.cpp), embedded in the binary.
const char* dashboard_page();

class Supervisor {
 public:
  Supervisor(asio::io_context& io, Config config, std::string app_name,
             std::vector<std::string> argv);
  // Runs the cluster until it stops; returns the master's exit code.
  int run();
  // Rolling reload (SIGHUP): each worker is replaced by a fresh exec of the binary, the new one
  // ready before the old one drains, then the agent is restarted. A replacement that fails to
  // start stops the reload and the old generation keeps serving.
  void reload(const std::string& why);
  // Master upgrade (clutchctl upgrade, SIGUSR2): execs the binary on disk as a new master that
  // takes over the sockets; see upgrade.cpp. `answer` (may be empty) gets progress and outcome.
  void upgrade(ControlServer::Answer answer);

 private:
  enum class Phase { kStarting, kRunning, kStopping };

  void wait_signals();
  // Serves on the listening sockets handed over instead of binding (may lower `workers` for
  // reuse_port, one socket per worker).
  void adopt_listen_sockets(unsigned& workers);
  void wait_children();
  void wait_hangup();
  void wait_reopen();          // SIGUSR1: reopen the log files, the master's and every child's
  void wait_upgrade_signal();  // SIGUSR2
  // upgrade.cpp: the old master's steps, then the new master's.
  void read_upgrade_channel();
  void stop_agent_for_upgrade();
  void upgrade_agent_gone();
  void upgrade_succeeded();
  void upgrade_failed(const std::string& why);
  bool on_new_master_exit(pid_t pid, int status);  // false: not the new master
  void handshake_with_old_master();
  void take_over_from_old_master();
  void tell_old_master_ready();
  // Every heartbeat interval: a ready child silent for hang_timeout is hung.
  void watch_hangs();
  void on_hang(Child& child, Millis silent);
  // A child draining on its own must exit within kill_timeout, or is killed (its slot refilled).
  void expect_exit_after_drain(Child& child);
  // A child whose channel has held an unfinished frame past the limit: killed, its work
  // redelivered.
  void on_incomplete_frame(Child& child, Millis limit, Millis coarse_now);
  // Recycling (recycling.cpp). Once a second with max_rss set: a child over it is replaced
  // gracefully. With max_requests set, each worker's own limit is drawn at its spawn and judged
  // at each of its metrics reports.
  void watch_memory();
  uint64_t draw_request_limit();
  void check_request_limit(Child& child);
  // Ready, the slot's own process, nothing else replacing it, no reload running.
  bool may_recycle(Child& child);
  // WATCHDOG=1 to systemd at half its watchdog period while the loop turns.
  void feed_watchdog(std::chrono::microseconds every);
  void replace_gracefully(Child& child, const std::string& why);
  void replacement_ready(Child& candidate);
  // The control socket's commands (control_commands.cpp).
  void open_control_socket();
  void open_metrics_listener();
  MetricsServer::Page metrics_page(const MetricsServer::Request& request);  // metrics_pages.cpp
  // The dashboard's reload and scale buttons (dashboard_controls), dashboard.cpp.
  MetricsServer::Page dashboard_action(const MetricsServer::Request& request);
  std::string metrics_text();
  nlohmann::json dashboard_json();  // dashboard.cpp: what GET /api/status answers
  void on_control_request(const nlohmann::json& request, ControlServer::Answer answer);
  nlohmann::json status_json();
  // Refreshes the child's RSS and CPU from /proc if the last reading is over 250 ms old.
  Child& sampled(Child& child);
  // Passes an operator's command to a child (the agent for jobs and queues); `answer` gets the
  // child's answer, or an error if it exits or has not answered within `timeout`.
  void ask(Child& child, nlohmann::json request, ControlServer::Answer answer, Millis timeout);
  void on_answer(Child& child, std::string_view payload);
  void fail_asks(pid_t pid, const std::string& why);
  void ask_agent(const nlohmann::json& request, ControlServer::Answer answer);
  std::string cluster_state() const;
  // What the operations' admission rule needs (master/admission.hpp).
  Activity activity() const;
  void scale(std::size_t workers, ControlServer::Answer answer);
  void remove_retired_slots();
  // Membership to every process at the end of this loop turn (coalesces a burst of changes), or
  // during a rolling reload within kReloadAnnounceEvery; announce_members_now sends what is due.
  void announce_members_soon();
  void announce_members_now();
  static constexpr std::chrono::milliseconds kReloadAnnounceEvery{50};
  // Sticky mode: re-attaches the reuseport program when a slot's liveness changed.
  void update_sticky();
  std::vector<bool> sticky_live_;
  bool announce_posted_ = false, sticky_posted_ = false;
  void spawn_added_slots(std::size_t index);  // scale up: from `index` on, one per loop turn
  void restart(const nlohmann::json& request, ControlServer::Answer answer);
  void restart_done(int slot, bool ok, const std::string& outcome);
  void check_scale_done(bool timed_out = false);
  void reload_finished(bool ok, const std::string& outcome);
  void reload_progress(const std::string& step);
  Child* spawn(Slot& slot, bool reload_candidate = false);
  void reload_next();
  void reload_candidate_ready(Child& candidate);
  // A ready candidate becomes its slot's process (reload or replacement); returns the old pid.
  pid_t take_over_slot(Child& candidate);
  void abort_reload(const std::string& error);
  void on_control(Child& child, std::string_view op, std::string_view payload);
  void on_ready(Child& child);
  void on_channel_closed(pid_t pid, const std::string& reason, bool protocol_error);
  void on_exit(pid_t pid, int status);
  void restart_later(Slot& slot, Millis delay);
  void maybe_cluster_ready();
  void fail_start(const std::string& who, const std::string& error,
                  int exit_code = kExitStartFailed);
  // A slot spent its max_restarts: stop everything and exit 1, naming the slot and its last error.
  void give_up(const Slot& slot, const std::string& last);
  // A graceful stop asked for (signal, clutchctl): after drain_grace if set, else at once.
  void stop_after_grace(int exit_code, const std::string& why);
  void begin_stop(int exit_code, const std::string& why);
  // A reaped child's group: SIGTERM now, SIGKILL after kill_timeout if anything is left in it.
  void end_group(pid_t pgid);
  void watch_lingering_groups();
  void warn_and_kill_group(pid_t pgid);
  // Forgets the empty groups and SIGKILLs those past their deadline.
  void sweep_lingering_groups();
  // At the master's exit: waits (bounded by the groups' deadlines) for them, then SIGKILLs them.
  void end_lingering_groups_now();
  // Tells systemd `state` (sd_notify), unless this master has handed over to a new one.
  void notify(std::string_view state) {
    if (!upgraded_) notify_systemd(state);
  }
  void continue_stop();
  void force_stop();
  void terminate(Child& child);
  void finish();
  Slot& slot_of(const Child& child);
  // A slot with the configured restart policy and budget (policy_ must be set).
  Slot make_slot(Role role, unsigned index);
  std::size_t live_workers();

  asio::io_context& io_;
  Config config_;
  std::string app_name_;
  std::vector<std::string> argv_;
  std::string exe_path_;
  std::string config_text_;
  pid_t pid_;
  Clock::time_point started_at_;
  ListenSocket listen_;  // the shared socket (or the first of the reuse_port group)
  std::vector<int>
      slot_listen_fds_;  // reuse_port: worker slot i's own socket, kept for its replacements

  ChildTable children_;
  Router router_;
  Slot agent_slot_;
  // A deque: slots are added and removed at the end by scale, and timers hold references to them.
  std::deque<Slot> worker_slots_;
  RestartPolicyConfig policy_;
  std::vector<ControlServer::Answer> reload_waiters_;
  // clutchctl restart: answered when the slot's new process is ready (-1: the agent).
  std::map<int, std::vector<ControlServer::Answer>> restart_waiters_;
  std::string agent_restart_reason_;  // why the agent was restarted on request, until it is ready
  struct ScaleState {
    std::size_t target = 0;
    std::vector<ControlServer::Answer> waiters;
    std::unique_ptr<asio::steady_timer> timer;
  } scale_;
  bool workers_spawned_ = false;

  struct ReloadState {
    bool active = false;
    std::size_t next_slot = 0;
    bool agent_restarting = false;
    Clock::time_point started;
    int generation = 0;
  } reload_;

  // Old master side of an upgrade in progress (pid 0: none).
  struct UpgradeState {
    pid_t pid = 0;
    std::unique_ptr<asio::local::stream_protocol::socket> channel;
    std::unique_ptr<asio::streambuf> input;
    std::vector<ControlServer::Answer> waiters;
    std::unique_ptr<asio::steady_timer> timer;
    bool agent_stopped = false, go_sent = false;
  } upgrade_;
  bool upgraded_ = false;  // a new master serves our sockets now
  // New master side: the sockets handed over, and the handshake with the old master.
  InheritedSockets inherited_;
  std::unique_ptr<asio::local::stream_protocol::socket> old_master_;
  std::unique_ptr<asio::streambuf> old_master_input_;

  Phase phase_ = Phase::kStarting;
  int exit_code_ = kExitOk;
  asio::signal_set stop_signals_, hangup_signal_, child_signals_, reopen_signal_, upgrade_signal_;
  asio::steady_timer hang_timer_, announce_timer_, memory_timer_, watchdog_timer_, grace_timer_;
  // drain_grace: asked to stop, /readyz says 503 while the workers keep serving.
  bool draining_for_balancers_ = false;
  // Process groups of reaped children that still have members (what the child started): sent
  // SIGTERM at the reap, SIGKILLed at their deadline (kill_timeout later) unless empty by then.
  std::map<pid_t, Clock::time_point> lingering_groups_;
  std::unique_ptr<asio::steady_timer> group_timer_;
  ControlServer control_;
  MetricsServer metrics_;
  MetricsAggregate app_metrics_;  // what the children report, merged
  struct PendingAsk {
    pid_t pid = 0;
    ControlServer::Answer answer;
    std::unique_ptr<asio::steady_timer> timer;
  };
  std::map<uint64_t, PendingAsk> asks_;
  uint64_t next_ask_ = 1;
  struct DashboardState {
    Clock::time_point asked_at{};
    int asks_open = 0;
    nlohmann::json agent_view = nlohmann::json::object();  // the agent's last "jobs", "queues"
    Clock::time_point answered_at{};  // when agent_view was last refreshed (never: epoch)
    pid_t answered_by = 0;            // by which agent: a new agent's view starts empty
  } dashboard_;
  Clock::time_point last_hang_sweep_;
};

}  // namespace clutch::master
