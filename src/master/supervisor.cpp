#include "master/supervisor.hpp"

#include <asio/post.hpp>

#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>

#include "common/child_exit_codes.hpp"
#include "common/config_keys.hpp"
#include "common/credentials.hpp"
#include "common/log.hpp"
#include "common/signals.hpp"
#include "master/cpu_count.hpp"
#include "master/guarded_loop.hpp"
#include "master/pid_file.hpp"
#include "master/proc_stats.hpp"
#include "master/sd_notify.hpp"
#include "master/spawner.hpp"
#include "master/sticky.hpp"
#include "messaging/control_ops.hpp"

namespace clutch::master {
std::string exit_description(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return fmt::format("was killed by signal {} ({})", WTERMSIG(status),
                       strsignal(WTERMSIG(status)));
  }
  return fmt::format("ended with status {}", status);
}

namespace {

// The soft limit on open files is often 1,024 while the hard one allows far more; a server wants
// the most it may have (children inherit it). Failing that is no reason not to start.
void raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  rlim_t was = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) == 0) {
    spdlog::debug("open-file limit raised from {} to {}", static_cast<long long>(was),
                  static_cast<long long>(limit.rlim_max));
  }
}

// Where this binary is, for spawning children and upgrades: readlink(), not std::filesystem,
// whose pages in libstdc++ would be mapped by the master alone (issue 13's memory figures).
std::string own_executable_path() {
  std::string path(4096, '\0');
  ssize_t n = readlink("/proc/self/exe", path.data(), path.size());
  if (n <= 0 || static_cast<size_t>(n) >= path.size()) return "/proc/self/exe";
  path.resize(static_cast<size_t>(n));
  return path;
}

long long ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<Millis>(Clock::now() - t).count();
}

}  // namespace

Supervisor::Supervisor(asio::io_context& io, Config config, std::string app_name,
                       std::vector<std::string> argv)
    : io_(io),
      config_(std::move(config)),
      app_name_(std::move(app_name)),
      argv_(std::move(argv)),
      pid_(getpid()),
      router_(
          children_, pid_,
          [this](Child& c, std::string_view op, std::string_view payload) {
            on_control(c, op, payload);
          },
          [this](Child& c, const std::string& reason) {
            spdlog::error("{} broke the messenger protocol ({}): restarting it", c.describe(),
                          reason);
            c.channel->close();
            kill(c.pid, SIGKILL);
          }),
      stop_signals_(io, SIGTERM, SIGINT, SIGQUIT),
      hangup_signal_(io, SIGHUP),
      child_signals_(io, SIGCHLD),
      reopen_signal_(io, SIGUSR1),
      upgrade_signal_(io, SIGUSR2),
      hang_timer_(io),
      announce_timer_(io),
      memory_timer_(io),
      watchdog_timer_(io),
      grace_timer_(io),
      control_(io,
               [this](const nlohmann::json& request, ControlServer::Answer answer) {
                 on_control_request(request, std::move(answer));
               }),
      metrics_(io, [this](const MetricsServer::Request& r) { return metrics_page(r); }) {}

int Supervisor::run() {
  started_at_ = Clock::now();
  exe_path_ = own_executable_path();
  signal(SIGPIPE, SIG_IGN);
  raise_open_file_limit();

  unsigned workers = config_.workers != 0 ? config_.workers : usable_cpus();
  auto move_high = [](int fd) {
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    return high;
  };
  if (config_.sticky && !config_.reuse_port) {
    std::cerr << app_name_ << ": sticky = true needs reuse_port = true (one socket per worker)"
              << std::endl;
    return kExitUsage;
  }
  try {
    inherited_ = take_inherited_sockets();
    if (!inherited_.listen.empty()) {
      // Handed over (systemd socket activation, or the master this one upgrades): not bound here,
      // so no connection was refused in between.
      adopt_listen_sockets(workers);
    } else if (config_.reuse_port) {
      if (config_.host.rfind("unix:", 0) == 0)
        throw std::runtime_error("reuse_port applies to TCP; a unix: socket is always shared");
      for (ListenSocket& s : bind_reuse_port_group(config_.host, config_.port, workers)) {
        slot_listen_fds_.push_back(move_high(s.fd));
        listen_.port = s.port;
      }
      listen_.fd = slot_listen_fds_.front();
    } else {
      listen_ = config_.host.rfind("unix:", 0) == 0
                    ? bind_unix_socket(config_.host.substr(5), config_.socket_mode)
                    : bind_listen_socket(config_.host, config_.port);
      listen_.fd = move_high(listen_.fd);
    }
  } catch (const std::exception& e) {
    spdlog::error("cannot start: {}", e.what());
    return kExitStartFailed;
  }
  if (!config_.user.empty()) {
    try {
      // Fail here, not in each child: an unknown user, or a log_dir the user cannot write (the
      // master checked it as root; the children would fall back to stderr, unseen).
      auto who = resolve_credentials(config_.user, config_.group);
      if (!config_.log_dir.empty()) {
        std::string refused =
            first_unwritable_as(who, {fmt::format("{}/{}.agent.log", config_.log_dir, app_name_),
                                      fmt::format("{}/{}.worker.log", config_.log_dir, app_name_)});
        if (!refused.empty())
          throw ConfigError(
              fmt::format("log_dir: user '{}' cannot write {}", config_.user, refused));
      }
    } catch (const ConfigError& e) {
      spdlog::error("cannot start: {}", e.what());
      std::cerr << app_name_ << ": " << e.what() << std::endl;
      return kExitUsage;
    }
  }
  config_text_ = serialize_config(config_);
  router_.set_max_message_size(config_.max_message_size);

  policy_ = RestartPolicyConfig{config_.min_uptime, config_.restart_backoff_initial,
                                config_.restart_backoff_max};
  agent_slot_ = make_slot(Role::kAgent, 0);
  for (unsigned i = 0; i < workers; ++i) worker_slots_.push_back(make_slot(Role::kWorker, i));
  wait_signals();
  wait_hangup();
  wait_reopen();
  wait_upgrade_signal();
  wait_children();
  // Always: besides hangs (when hang_timeout is set), the sweep bounds incomplete frames.
  last_hang_sweep_ = Clock::now();
  watch_hangs();
  if (config_.max_rss > 0) watch_memory();
  // A new master takes the control and metrics sockets over once it is ready; until then the old
  // one answers on them.
  if (inherited_.upgrade < 0) {
    open_control_socket();
    open_metrics_listener();
    // An upgrade's new master writes it once it serves (cluster_is_ready), not before: until
    // then the pid a signal should reach is the old master's.
    if (!config_.pid_file.empty()) {
      try {
        write_pid_file(config_.pid_file, pid_);
      } catch (const std::exception& e) {
        spdlog::error("cannot start: {}", e.what());
        std::cerr << app_name_ << ": " << e.what() << std::endl;
        return kExitUsage;
      }
    }
  }
  if (long long usec = systemd_watchdog_usec(); usec > 0)
    feed_watchdog(std::chrono::microseconds(usec / 2));
  spdlog::info("starting {} with 1 agent and {} worker(s) on {}{}", app_name_, workers,
               endpoint_text(config_.host, listen_.port),
               inherited_.upgrade >= 0 ? " (upgrading a running master)" : "");
  if (inherited_.upgrade >= 0)
    handshake_with_old_master();  // the agent starts once the old one has stopped
  else
    spawn(agent_slot_);
  int escapes = run_guarded(io_, [this](std::string_view what, int) {
    // The stop may already be under way (begin_stop ignores a second ask); the exit code says
    // what happened either way.
    begin_stop(kExitInternalError, "internal error: " + std::string(what));
    exit_code_ = kExitInternalError;
  });
  if (escapes > 0 && children_.size() > 0) {
    spdlog::critical("master: the stop kept failing: killing the children");
    force_stop();
    exit_code_ = kExitInternalError;
  }
  if (!config_.pid_file.empty()) remove_pid_file_if_ours(config_.pid_file, pid_);
  return exit_code_;
}

void Supervisor::announce_members_soon() {
  if (!sticky_posted_) {
    sticky_posted_ = true;
    asio::post(io_, [this] {
      sticky_posted_ = false;
      update_sticky();
    });
  }
  if (announce_posted_) return;
  announce_posted_ = true;
  if (!reload_.active) {
    asio::post(io_, [this] { announce_members_now(); });
    return;
  }
  // A rolling reload changes membership once per step, and each announcement wakes every
  // process: per step, that made a reload O(N^2) in wakeups (5.4x the time for 4x the workers,
  // 32 -> 128). During one, the news is gathered for a while and goes out as one delta (what
  // joined and left since the last), and at its end at once.
  announce_timer_.expires_after(kReloadAnnounceEvery);
  announce_timer_.async_wait([this](const asio::error_code&) { announce_members_now(); });
}

void Supervisor::announce_members_now() {
  if (!announce_posted_) return;  // already sent (a reload's end flushed it)
  announce_posted_ = false;
  announce_timer_.cancel();
  if (phase_ == Phase::kRunning) router_.announce_member_changes();
}

void Supervisor::update_sticky() {
  if (!config_.sticky || slot_listen_fds_.empty()) return;
  std::vector<bool> live(slot_listen_fds_.size(), false);
  for (std::size_t i = 0; i < worker_slots_.size() && i < live.size(); ++i) {
    Child* c = children_.find(worker_slots_[i].current);
    live[i] = c != nullptr && c->state == ChildState::kReady && !worker_slots_[i].retired;
  }
  if (live == sticky_live_) return;
  std::string error;
  if (!attach_sticky_program(slot_listen_fds_.front(), sticky_program(live), error)) {
    spdlog::error("sticky: {} (connections are spread by the kernel's hash meanwhile)", error);
    return;
  }
  sticky_live_ = std::move(live);
}

void Supervisor::adopt_listen_sockets(unsigned& workers) {
  // systemd passes blocking sockets (unless NonBlocking=yes): a worker's accept loop would block.
  for (int fd : inherited_.listen) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  listen_.fd = inherited_.listen.front();
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  getsockname(listen_.fd, reinterpret_cast<sockaddr*>(&address), &length);
  listen_.port =
      ntohs(address.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                                          : reinterpret_cast<sockaddr_in*>(&address)->sin_port);
  if (config_.reuse_port) {
    slot_listen_fds_ = inherited_.listen;
    if (workers > slot_listen_fds_.size()) {
      spdlog::warn("reuse_port: {} sockets handed over for {} workers: starting {}",
                   slot_listen_fds_.size(), workers, slot_listen_fds_.size());
      workers = static_cast<unsigned>(slot_listen_fds_.size());
    }
    return;
  }
  for (std::size_t i = 1; i < inherited_.listen.size(); ++i) {
    spdlog::warn(
        "{} listening sockets handed over: only the first is served (set reuse_port "
        "for one per worker)",
        inherited_.listen.size());
    close(inherited_.listen[i]);
  }
}

void Supervisor::wait_signals() {
  stop_signals_.async_wait([this](const asio::error_code& ec, int sig) {
    if (ec) return;
    if (phase_ == Phase::kStopping && sig != SIGQUIT) {
      spdlog::warn("second {} during the graceful stop: stopping now", strsignal(sig));
      force_stop();
    } else {
      stop_after_grace(exit_code_, fmt::format("received {}", strsignal(sig)));
    }
    wait_signals();
  });
}

void Supervisor::wait_hangup() {
  hangup_signal_.async_wait([this](const asio::error_code& ec, int) {
    if (ec) return;
    reload("SIGHUP");
    wait_hangup();
  });
}

void Supervisor::wait_reopen() {
  reopen_signal_.async_wait([this](const asio::error_code& ec, int) {
    if (ec) return;
    reopen_logs();
    // A child still starting may not handle the signal yet (its default would kill it); it
    // opened its file a moment ago anyway.
    children_.for_each([](Child& c) {
      if (c.state != ChildState::kStarting) kill(c.pid, SIGUSR1);
    });
    wait_reopen();
  });
}

void Supervisor::wait_children() {
  child_signals_.async_wait([this](const asio::error_code& ec, int) {
    if (ec) return;
    int status = 0;
    for (pid_t pid; (pid = waitpid(-1, &status, WNOHANG)) > 0;) {
      // The child led its own process group: whatever it started and left behind (a shell's
      // background job holding the port) goes with it, asked first as the child was.
      if (on_new_master_exit(pid, status)) continue;  // a failed upgrade, not a child
      end_group(pid);
      on_exit(pid, status);
    }
    wait_children();
  });
}

void Supervisor::feed_watchdog(std::chrono::microseconds every) {
  notify("WATCHDOG=1");
  watchdog_timer_.expires_after(every);
  watchdog_timer_.async_wait([this, every](const asio::error_code& ec) {
    if (!ec) feed_watchdog(every);
  });
}

namespace {
// How long a frame may stay incomplete when hang detection is off: a child's loop that blocks
// that long in a handler while its output is half-written is indistinguishable from one that
// broke the protocol, and the protocol break must not freeze the child's work for good.
constexpr Millis kIncompleteFrameLimitWithoutHangTimeout{60000};
}  // namespace

void Supervisor::watch_hangs() {
  bool hang_detection = config_.hang_timeout.count() > 0;
  hang_timer_.expires_after(hang_detection ? heartbeat_interval(config_.hang_timeout)
                                           : std::chrono::seconds(1));
  hang_timer_.async_wait([this, hang_detection](const asio::error_code& ec) {
    if (ec) return;
    auto now = Clock::now();
    auto sweep_interval =
        hang_detection ? config_.hang_timeout / 2 : kIncompleteFrameLimitWithoutHangTimeout / 2;
    // If the master's own loop stalled (the machine was suspended, the master was stopped),
    // every child looks silent: start counting afresh instead of killing them all.
    bool master_stalled = now - last_hang_sweep_ > sweep_interval;
    last_hang_sweep_ = now;
    Millis frame_limit =
        hang_detection ? config_.hang_timeout : kIncompleteFrameLimitWithoutHangTimeout;
    Millis coarse_now = ipc::Channel::coarse_clock();
    std::vector<pid_t> broken;
    children_.for_each([&](Child& c) {
      if (c.hung || c.term_sent || !c.connected()) return;
      if (c.state != ChildState::kReady && c.state != ChildState::kDraining) return;
      // A channel the master paused (back-pressure) brings no news by the master's choice.
      if (master_stalled || c.channel->paused()) {
        c.last_seen = now;
        c.channel->restart_incomplete_clock(coarse_now);
        return;
      }
      // A frame begun and never finished: checked first, since the child may well be alive (its
      // later frames are being read as the rest of that one), and that is no hang.
      Millis incomplete = c.channel->incomplete_for(coarse_now);
      if (incomplete > frame_limit) {
        broken.push_back(c.pid);
        return;
      }
      if (!hang_detection) return;
      // Mid-frame, its beats are read as the rest of that frame, so silence proves nothing: the
      // frame's own limit (the same hang_timeout) judges it. Both clocks start near together,
      // and the silence used to win by a sweep now and then, calling a live child hung.
      if (incomplete.count() > 0) return;
      auto silent = std::chrono::duration_cast<Millis>(now - c.last_seen);
      if (silent > config_.hang_timeout) on_hang(c, silent);
    });
    for (pid_t pid : broken) {
      if (Child* c = children_.find(pid)) on_incomplete_frame(*c, frame_limit, coarse_now);
    }
    watch_hangs();
  });
}

void Supervisor::on_incomplete_frame(Child& c, Millis limit, Millis coarse_now) {
  spdlog::error(
      "{} broke the messenger protocol: a frame of {} bytes has been incomplete for {} ms ({} "
      "bytes arrived; limit {} ms, hang_timeout); restarting it, its unacknowledged messages go "
      "to other workers",
      c.describe(), c.channel->incomplete_size(), c.channel->incomplete_for(coarse_now).count(),
      c.channel->incomplete_received(), limit.count());
  c.channel->close();
  kill(c.pid, SIGKILL);
}

void Supervisor::on_hang(Child& c, Millis silent) {
  c.hung = true;
  if (c.state == ChildState::kReady) {
    c.state = ChildState::kDraining;  // no new work for it
    router_.targets_changed();
  }
  pid_t pid = c.pid;
  if (process_is_stopped(pid)) {
    spdlog::error(
        "{} is stopped (SIGSTOP or a debugger) and has not answered for {} ms (hang_timeout {} "
        "ms): killing it",
        c.describe(), silent.count(), config_.hang_timeout.count());
    kill(pid, SIGKILL);
    return;
  }
  spdlog::error(
      "{} is hung: its loop has not turned for {} ms (hang_timeout {} ms); its backtrace follows "
      "in its log; killing it",
      c.describe(), silent.count(), config_.hang_timeout.count());
  kill(pid, hang_backtrace_signal());
  // A moment for the backtrace to be written, then the kill.
  c.kill_timer->expires_after(std::chrono::seconds(1));
  c.kill_timer->async_wait([pid](const asio::error_code& ec) {
    if (!ec) kill(pid, SIGKILL);
  });
}

Child* Supervisor::spawn(Slot& slot, bool reload_candidate) {
  SpawnRequest request;
  request.role = slot.role == Role::kAgent ? "agent" : "worker";
  request.worker_index = slot.role == Role::kAgent ? -1 : slot.index;
  request.listen_fd = slot.role != Role::kWorker ? -1
                      : config_.reuse_port       ? slot_listen_fds_.at(slot.index)
                                                 : listen_.fd;
  request.listen_port = listen_.port;
  request.config_text = config_text_;
  request.argv = argv_;
  request.exe_path = exe_path_;
  // Context::replacement(): started after the first ready to take a dead or replaced process's
  // place (not the first process of a slot that scale added).
  request.replacement = phase_ != Phase::kStarting && !slot.added;
  slot.added = false;
  SpawnedChild spawned;
  try {
    spawned = spawn_child(request);
  } catch (const std::exception& e) {
    if (phase_ == Phase::kStarting) {
      fail_start(request.role, e.what());
    } else if (reload_candidate) {
      abort_reload(e.what());
    } else {
      spdlog::error("{}", e.what());
      restart_later(slot, slot.backoff.on_exit(Millis{0}));
    }
    return nullptr;
  }

  auto child = std::make_unique<Child>();
  child->role = slot.role;
  child->slot = slot.index;
  child->pid = spawned.pid;
  child->started_at = Clock::now();
  child->channel = std::make_shared<ipc::Channel>(io_, spawned.ipc_fd,
                                                  config_.max_message_size + ipc::kMaxActionLength);
  child->startup_timer = std::make_unique<asio::steady_timer>(io_);
  child->kill_timer = std::make_unique<asio::steady_timer>(io_);
  child->stable_timer = std::make_unique<asio::steady_timer>(io_);
  child->reload_candidate = reload_candidate;
  if (slot.role == Role::kWorker) child->request_limit = draw_request_limit();
  Child& c = children_.add(std::move(child));
  // A reload candidate takes the slot only once it is ready.
  if (!reload_candidate) slot.current = c.pid;
  pid_t pid = c.pid;
  // The channel never outlives the Child: it is closed before the Child is removed, and a closed
  // channel calls nothing.
  c.channel->start(
      [this, &c](const ipc::FrameView& frame, std::byte* raw) { router_.on_frame(c, frame, raw); },
      [this, pid](const std::string& reason, bool protocol_error) {
        on_channel_closed(pid, reason, protocol_error);
      });
  c.channel->on_drain([this, &c] { router_.resume_blocked(c); });
  if (config_.hang_timeout.count() > 0) {
    c.channel->on_batch_end([this, &c] {
      // Any whole frame shows the child's loop turns; bytes of an unfinished one do not.
      if (uint64_t frames = c.channel->frames_received(); frames != c.frames_seen) {
        c.frames_seen = frames;
        c.last_seen = Clock::now();
      }
      router_.commit_borrowed();
    });
  } else {
    c.channel->on_batch_end([this] { router_.commit_borrowed(); });
  }
  router_.targets_changed();  // a new agent takes messages (into its channel) from now on
  c.startup_timer->expires_after(config_.startup_timeout);
  c.startup_timer->async_wait([this, pid](const asio::error_code& ec) {
    Child* late = children_.find(pid);
    if (ec || late == nullptr || late->state != ChildState::kStarting) return;
    std::string error =
        fmt::format("not ready within startup_timeout ({} ms)", config_.startup_timeout.count());
    late->fatal_error = error;
    spdlog::error("{} {}: killing it", late->describe(), error);
    kill(pid, SIGKILL);
  });
  spdlog::debug("started {}", c.describe());
  return &c;
}

void Supervisor::on_control(Child& child, std::string_view op, std::string_view payload) {
  if (op == messaging::kOpReady) {
    if (child.state == ChildState::kStarting) on_ready(child);
  } else if (op == messaging::kOpFatal) {
    child.fatal_error = std::string(payload);
    spdlog::error("{} failed: {}", child.describe(), payload);
  } else if (op == messaging::kOpMetrics) {
    std::string error;
    std::string slot = child.is_worker() ? std::to_string(child.slot) : "agent";
    if (!app_metrics_.update(child.pid, std::string(clutch::to_string(child.role)), slot, payload,
                             error)) {
      spdlog::warn("{} sent metrics the master cannot read ({}): ignored", child.describe(), error);
    } else {
      if (child.is_worker()) {
        std::vector<double> bounds;
        auto counts =
            app_metrics_.process_histogram(child.pid, "clutch_http_queue_seconds", bounds);
        if (!counts.empty())
          child.queue_recent.report(Clock::now(), std::move(bounds), std::move(counts));
      }
      check_request_limit(child);
    }
  } else if (op == messaging::kOpAnswer) {
    on_answer(child, payload);
  } else if (op == messaging::kOpBeat) {
    // Liveness only: the batch it came in already updated last_seen.
  } else if (op == messaging::kOpDraining) {
    if (child.state != ChildState::kGone) {
      bool was_ready = child.state == ChildState::kReady;
      child.state = ChildState::kDraining;
      router_.targets_changed();
      // In order after every frame already routed to it: once the child reads this, nothing
      // but broadcasts will come.
      router_.send_control(child, messaging::kOpDrainOk);
      if (was_ready && phase_ == Phase::kRunning) announce_members_soon();
      // A child that drains on its own (its own stop, an uncaught exception) has as long to
      // exit as one the master asked: a drain that never ends would hold its slot for good.
      if (!child.term_sent && !child.hung) expect_exit_after_drain(child);
    }
  } else {
    spdlog::error("{} sent an unknown control frame '{}': restarting it", child.describe(), op);
    child.channel->close();
    kill(child.pid, SIGKILL);
  }
}

void Supervisor::on_ready(Child& child) {
  child.state = ChildState::kReady;
  child.last_seen = Clock::now();
  child.startup_timer->cancel();
  if (child.reload_candidate) {
    return child.replacing_because.empty() ? reload_candidate_ready(child)
                                           : replacement_ready(child);
  }
  Slot& slot = slot_of(child);
  pid_t pid = child.pid;
  child.stable_timer->expires_after(config_.min_uptime);
  child.stable_timer->async_wait([this, pid, &slot](const asio::error_code& ec) {
    if (ec || slot.current != pid) return;
    if (slot.backoff.crashing()) {
      notify(fmt::format("STATUS=serving on {} with {} workers",
                         endpoint_text(config_.host, listen_.port), worker_slots_.size()));
      spdlog::info("{} {} is stable again", slot.role == Role::kAgent ? "agent" : "worker",
                   slot.index);
    }
    slot.backoff.on_stable();
  });
  spdlog::debug("{} ready in {} ms", child.describe(), ms_since(child.started_at));
  router_.targets_changed();

  switch (phase_) {
    case Phase::kStarting:
      if (child.role == Role::kAgent && !workers_spawned_) {
        workers_spawned_ = true;
        for (Slot& s : worker_slots_) spawn(s);
      }
      maybe_cluster_ready();
      break;
    case Phase::kRunning:
      // The newcomer knows its peers before its ready hooks run; the others hear of it once per
      // loop turn (64 workers coming up must not mean 64 x 65 announcements).
      router_.announce_members(&child);
      announce_members_soon();
      router_.send_runtime(child, messaging::kActionReady, {});
      spdlog::info("{} ready (replacement)", child.describe());
      check_scale_done();
      if (child.role == Role::kAgent && !agent_restart_reason_.empty()) {
        restart_done(-1, true,
                     fmt::format("agent restarted (pid {}): {}", child.pid,
                                 std::exchange(agent_restart_reason_, {})));
      }
      if (child.role == Role::kAgent && reload_.active && reload_.agent_restarting) reload_next();
      break;
    case Phase::kStopping:
      terminate(child);
      break;
  }
}

void Supervisor::maybe_cluster_ready() {
  if (!workers_spawned_) return;
  for (Slot& s : worker_slots_) {
    Child* c = children_.find(s.current);
    if (c == nullptr || c->state != ChildState::kReady) return;
  }
  phase_ = Phase::kRunning;
  if (old_master_) take_over_from_old_master();
  update_sticky();
  // Membership first, so that a process knows its peers when its ready hooks run; then what was
  // sent to the workers before they all existed; then ready.
  router_.announce_members();
  router_.cluster_ready();
  std::vector<pid_t> workers;
  children_.for_each([&](Child& c) {
    if (c.is_worker()) workers.push_back(c.pid);
    router_.send_runtime(c, messaging::kActionReady, {});
  });
  std::cout << fmt::format(
                   "{} ready in {} ms: master {}, agent {}, workers [{}], listening on {}{}{}",
                   app_name_, ms_since(started_at_), pid_, agent_slot_.current,
                   fmt::join(workers, ","), endpoint_text(config_.host, listen_.port),
                   control_.path().empty() ? "" : ", control " + control_.path(),
                   metrics_.address().empty() ? "" : ", metrics " + metrics_.address())
            << std::endl;
  notify(fmt::format("READY=1\nSTATUS=serving on {} with {} workers\nMAINPID={}",
                     endpoint_text(config_.host, listen_.port), workers.size(), pid_));
  if (old_master_ && !config_.pid_file.empty()) {
    // The hand-over: from now on signals by pid reach this master (the old one leaves the file
    // alone at its exit, since it no longer names it).
    try {
      write_pid_file(config_.pid_file, pid_);
    } catch (const std::exception& e) {
      spdlog::error("{} (it still names the old master)", e.what());
    }
  }
  tell_old_master_ready();
}

void Supervisor::on_channel_closed(pid_t pid, const std::string& reason, bool protocol_error) {
  Child* c = children_.find(pid);
  if (c == nullptr || c->state == ChildState::kGone) return;
  if (protocol_error) {
    spdlog::error("{} sent a bad frame ({}): disconnected, restarting it", c->describe(), reason);
    kill(pid, SIGKILL);
  } else {
    // A child closes its channel on its way out; one that lingers without it is useless.
    c->kill_timer->expires_after(std::chrono::seconds(1));
    c->kill_timer->async_wait([pid](const asio::error_code& ec) {
      if (!ec) kill(pid, SIGKILL);
    });
  }
  // Its unacknowledged work can go elsewhere now rather than when it is reaped.
  c->state = ChildState::kDraining;
  router_.on_child_gone(*c);
  router_.targets_changed();
}

void Supervisor::on_exit(pid_t pid, int status) {
  Child* c = children_.find(pid);
  if (c == nullptr) return;
  // Read its last words (a "fatal" frame) before judging the exit.
  if (c->connected()) c->channel->read_pending_now();
  c->channel->close();
  bool was_ready = c->state == ChildState::kReady || c->state == ChildState::kDraining;
  c->state = ChildState::kGone;
  c->startup_timer->cancel();
  c->kill_timer->cancel();
  c->stable_timer->cancel();
  router_.on_child_gone(*c);
  router_.targets_changed();
  app_metrics_.retire(pid);
  fail_asks(pid, "the " + std::string(clutch::to_string(c->role)) + " exited before answering");

  Slot& slot = slot_of(*c);
  if (slot.current == pid) slot.current = 0;
  bool failed_candidate = c->reload_candidate;
  bool failed_replacement = failed_candidate && !c->replacing_because.empty();
  if (failed_replacement) {
    slot.replacing = false;
    slot.replace_failed_at = Clock::now();
  }
  std::string who = c->describe();
  std::string how = exit_description(status);
  std::string error = c->fatal_error;
  Millis uptime = std::chrono::duration_cast<Millis>(Clock::now() - c->started_at);
  bool asked_to_stop = c->term_sent;
  children_.remove(pid);

  switch (phase_) {
    case Phase::kStarting:
      fail_start(who, error.empty() ? how : fmt::format("{} ({})", error, how),
                 WIFEXITED(status) && WEXITSTATUS(status) == kExitBadSetup ? kExitUsage
                                                                           : kExitStartFailed);
      break;
    case Phase::kRunning: {
      if (failed_replacement) {
        std::string outcome = fmt::format(
            "{} (a replacement) {} before it was ready{}; the old process keeps serving", who, how,
            error.empty() ? "" : ": " + error);
        spdlog::error("{}", outcome);
        restart_done(slot.index, false, outcome);
        break;
      }
      if (failed_candidate) {
        abort_reload(fmt::format("{} {} before it was ready{}", who, how,
                                 error.empty() ? "" : ": " + error));
        break;
      }
      if (slot.role == Role::kAgent && upgrade_.agent_stopped) {
        spdlog::info("{} {} (stopped for the new master)", who, how);
        upgrade_agent_gone();
        break;
      }
      if (slot.retired) {
        spdlog::info("{} {} (scaled down)", who, how);
        remove_retired_slots();
        check_scale_done();
        break;
      }
      if (slot.current != 0) {
        // Replaced by a reload: its successor already serves in the slot.
        spdlog::info("{} (replaced by pid {}) {}", who, slot.current, how);
        break;
      }
      if (reload_.active && reload_.agent_restarting && !was_ready && slot.role == Role::kAgent) {
        abort_reload(fmt::format("the new agent {} before it was ready", how));
      }
      if (reload_.active && reload_.agent_restarting && asked_to_stop && was_ready &&
          slot.role == Role::kAgent) {
        // Replaced by the reload, as the workers are: not a restart (no RESTARTS, no warning),
        // the one rule for every process a reload replaces. The agent is a singleton, so its
        // successor starts only now.
        spdlog::info("{} {} (replaced by reload {})", who, how, reload_.generation);
        announce_members_soon();
        spawn(slot);
        break;
      }
      if (!asked_to_stop && !slot.budget.on_exit(Clock::now())) {
        give_up(slot, fmt::format("{} {}{}", who, how, error.empty() ? "" : ": " + error));
        break;
      }
      slot.last_exit = fmt::format("{}{}", how, error.empty() ? "" : ": " + error);
      ++slot.restarts;
      // A process the master asked to stop (a reload's agent, a restart) is not crashing.
      Millis delay = asked_to_stop ? Millis{0} : slot.backoff.on_exit(uptime);
      if (slot.backoff.crashing()) {
        notify(fmt::format("STATUS=degraded: {} {} (crash {} in a row), restarting in {} ms", who,
                           how, slot.backoff.consecutive_crashes(), delay.count()));
        spdlog::warn(
            "{} {} after {} ms{}; crash {} in a row: cluster degraded, restarting in {} ms", who,
            how, uptime.count(), error.empty() ? "" : ": " + error,
            slot.backoff.consecutive_crashes(), delay.count());
      } else {
        spdlog::warn("{} {} after {} ms{}; restarting it", who, how, uptime.count(),
                     asked_to_stop ? " (stopped on request)" : "");
      }
      if (was_ready) announce_members_soon();
      restart_later(slot, delay);
      break;
    }
    case Phase::kStopping:
      spdlog::info("{} {}", who, how);
      continue_stop();
      break;
  }
}

void Supervisor::restart_later(Slot& slot, Millis delay) {
  if (delay.count() == 0) {
    spawn(slot);
    return;
  }
  slot.restart_timer->expires_after(delay);
  slot.restart_timer->async_wait([this, &slot](const asio::error_code& ec) {
    if (!ec && phase_ == Phase::kRunning && slot.current == 0) spawn(slot);
  });
}

void Supervisor::fail_start(const std::string& who, const std::string& error, int exit_code) {
  if (phase_ == Phase::kStopping) return;
  spdlog::error("{} failed to start: {}", who, error);
  std::cerr << fmt::format("{}: start failed: {} failed to start: {}", app_name_, who, error)
            << std::endl;
  begin_stop(exit_code, "start failed");
}

void Supervisor::give_up(const Slot& slot, const std::string& last) {
  std::string name = slot.role == Role::kAgent ? "the agent" : fmt::format("worker {}", slot.index);
  std::string why = fmt::format(
      "{} died {} times within {} ms (max_restarts = {}); last: {}: giving up, stopping the "
      "cluster",
      name, slot.budget.recent_exits(), config_.max_restarts_window.count(), config_.max_restarts,
      last);
  spdlog::error("{}", why);
  std::cerr << fmt::format("{}: {}", app_name_, why) << std::endl;
  begin_stop(kExitRestartLimit, "restart limit reached");
}

void Supervisor::stop_after_grace(int exit_code, const std::string& why) {
  if (phase_ != Phase::kRunning || config_.drain_grace.count() == 0)
    return begin_stop(exit_code, why);
  if (draining_for_balancers_) {
    spdlog::info("stopping ({}) during drain_grace: the stop begins now", why);
    grace_timer_.cancel();
    return begin_stop(exit_code, why);
  }
  // Load balancers poll /readyz: it says 503 from now on, while the workers go on serving what
  // still comes (requests already routed here, clients that resolved this host before).
  draining_for_balancers_ = true;
  spdlog::info(
      "stopping ({}): /readyz answers 503 and the workers keep serving for drain_grace ({} ms), "
      "then the stop begins",
      why, config_.drain_grace.count());
  notify("STOPPING=1\nSTATUS=draining for load balancers");
  grace_timer_.expires_after(config_.drain_grace);
  grace_timer_.async_wait([this, exit_code, why](const asio::error_code& ec) {
    if (ec || phase_ != Phase::kRunning) return;
    begin_stop(exit_code, why);
  });
}

void Supervisor::begin_stop(int exit_code, const std::string& why) {
  if (phase_ == Phase::kStopping) return;
  upgrade_failed("this master was asked to stop");
  phase_ = Phase::kStopping;
  exit_code_ = exit_code;
  spdlog::info("stopping ({}): workers first, then the agent", why);
  notify("STOPPING=1");
  agent_slot_.restart_timer->cancel();
  for (Slot& s : worker_slots_) s.restart_timer->cancel();
  continue_stop();
}

void Supervisor::continue_stop() {
  if (live_workers() > 0) {
    children_.for_each([&](Child& c) {
      if (c.is_worker()) terminate(c);
    });
    return;
  }
  if (Child* agent = children_.agent()) {
    terminate(*agent);
    return;
  }
  if (children_.size() == 0) finish();
}

void Supervisor::terminate(Child& c) {
  if (c.term_sent || c.state == ChildState::kGone) return;
  c.term_sent = true;
  if (c.state == ChildState::kReady) {
    c.state = ChildState::kDraining;
    router_.targets_changed();
  }
  kill(c.pid, SIGTERM);
  pid_t pid = c.pid;
  c.kill_timer->expires_after(config_.kill_timeout);
  c.kill_timer->async_wait([this, pid](const asio::error_code& ec) {
    Child* late = children_.find(pid);
    if (ec || late == nullptr) return;
    spdlog::warn("{} still running {} ms after SIGTERM (kill_timeout): SIGKILL", late->describe(),
                 config_.kill_timeout.count());
    kill(pid, SIGKILL);
  });
}

void Supervisor::expect_exit_after_drain(Child& c) {
  pid_t pid = c.pid;
  c.kill_timer->expires_after(config_.kill_timeout);
  c.kill_timer->async_wait([this, pid](const asio::error_code& ec) {
    Child* late = children_.find(pid);
    if (ec || late == nullptr || late->state == ChildState::kGone) return;
    spdlog::warn(
        "{} said it was draining {} ms ago and still runs (kill_timeout): SIGKILL; its slot is "
        "refilled",
        late->describe(), config_.kill_timeout.count());
    kill(pid, SIGKILL);
  });
}

void Supervisor::force_stop() {
  exit_code_ = kExitForced;
  children_.for_each([](Child& c) { kill(-c.pid, SIGKILL); });
  for (auto& [pgid, deadline] : lingering_groups_) kill(-pgid, SIGKILL);
  lingering_groups_.clear();
}

void Supervisor::end_group(pid_t pgid) {
  // The group's id cannot be reused while a member lives, so these reach no stranger; the
  // group is looked at every 100 ms and forgotten once empty, so that a later SIGKILL cannot
  // reach a new group that took the freed id either.
  if (kill(-pgid, SIGTERM) != 0) return;  // ESRCH: the child left nothing behind
  lingering_groups_[pgid] = Clock::now() + config_.kill_timeout;
  watch_lingering_groups();
}

void Supervisor::warn_and_kill_group(pid_t pgid) {
  spdlog::warn(
      "process group {} (what a child started) still running {} ms after SIGTERM "
      "(kill_timeout): SIGKILL",
      pgid, config_.kill_timeout.count());
  kill(-pgid, SIGKILL);
}

void Supervisor::sweep_lingering_groups() {
  auto now = Clock::now();
  for (auto it = lingering_groups_.begin(); it != lingering_groups_.end();) {
    if (kill(-it->first, 0) != 0) {
      it = lingering_groups_.erase(it);  // empty: forgotten before its id can be reused
    } else if (now >= it->second) {
      warn_and_kill_group(it->first);
      it = lingering_groups_.erase(it);
    } else {
      ++it;
    }
  }
}

void Supervisor::watch_lingering_groups() {
  if (!group_timer_) group_timer_ = std::make_unique<asio::steady_timer>(io_);
  if (lingering_groups_.empty()) return;
  group_timer_->expires_after(std::chrono::milliseconds(100));
  group_timer_->async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    sweep_lingering_groups();
    watch_lingering_groups();
  });
}

void Supervisor::end_lingering_groups_now() {
  // The master is about to exit: its timers go with it, so wait here (bounded by the latest
  // deadline, polling) for groups still ending.
  for (int turn = 0; turn < 100000 && !lingering_groups_.empty(); ++turn) {
    sweep_lingering_groups();
    if (lingering_groups_.empty()) break;
    // Orphans reparented here (if this master is their subreaper) would stay as zombies, and a
    // zombie still counts as a member.
    for (int status = 0; waitpid(-1, &status, WNOHANG) > 0;) {
    }
    usleep(20000);
  }
}

void Supervisor::finish() {
  control_.close();
  metrics_.close();
  std::size_t lost = router_.fail_unacknowledged("the cluster stopped before a worker handled it");
  if (lost > 0) spdlog::warn("{} acknowledged message(s) were never handled", lost);
  if (!config_.reuse_port && listen_.fd >= 0) close(listen_.fd);
  // A UNIX socket's file goes with the last master that serves it (not with one that upgraded).
  if (config_.host.rfind("unix:", 0) == 0 && !upgraded_) unlink(config_.host.c_str() + 5);
  for (int fd : slot_listen_fds_) close(fd);
  end_lingering_groups_now();
  spdlog::info("stopped (exit code {})", exit_code_);
  io_.stop();
}

Slot Supervisor::make_slot(Role role, unsigned index) {
  Slot slot;
  slot.role = role;
  slot.index = static_cast<int>(index);
  slot.backoff = RestartBackoff(policy_);
  slot.budget = RestartBudget(config_.max_restarts, config_.max_restarts_window);
  slot.restart_timer = std::make_unique<asio::steady_timer>(io_);
  return slot;
}

Slot& Supervisor::slot_of(const Child& child) {
  return child.role == Role::kAgent ? agent_slot_ : worker_slots_.at(child.slot);
}

std::size_t Supervisor::live_workers() {
  std::size_t n = 0;
  children_.for_each([&](Child& c) { n += c.is_worker() ? 1 : 0; });
  return n;
}

}  // namespace clutch::master
