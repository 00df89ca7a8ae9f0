// Upgrading the master itself (clutchctl upgrade, SIGUSR2), as nginx and gunicorn do: the master
// forks and execs the binary on disk, handing it the listening sockets (and the connections
// queued on them), the control and metrics sockets and one end of a handshake socket, by the
// systemd socket-activation protocol. Once-per-host work never runs twice: the new master
// prepares, the old one stops its agent, the new one starts its agent and workers, and only when
// they are ready does the old master drain its workers and exit. A new master that fails at any
// step is killed and the old one, its agent restarted, keeps serving.
//
//   old master                         new master
//   fork + exec  ---------------------> take sockets, load config
//                <--------------------- "version 1", "prepared"
//   stop the agent
//   "go"         --------------------->  start agent, then workers
//                <--------------------- "ready"   (and serves control and metrics)
//   drain workers, exit 0
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>
#include <asio/read_until.hpp>

#include <cstring>
#include <string>
#include <string_view>

#include "master/inherited_sockets.hpp"
#include "master/sd_notify.hpp"
#include "master/supervisor.hpp"

extern char** environ;

namespace clutch::master {
namespace {

// The hand-over's lines. The new master names its protocol's version before "prepared"; a
// master older than that line sends none and speaks version 1's lines, so it is taken as 1.
// Another version fails the upgrade, naming both (stop and start the service instead).
constexpr int kUpgradeProtocol = 1;
constexpr std::string_view kLineVersion = "version ";
constexpr std::string_view kLinePrepared = "prepared";
constexpr std::string_view kLineGo = "go";
constexpr std::string_view kLineReady = "ready";

void send_line(int fd, std::string_view line) {
  std::string text = std::string(line) + "\n";
  (void)::send(fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

void Supervisor::wait_upgrade_signal() {
  upgrade_signal_.async_wait([this](const asio::error_code& ec, int) {
    if (ec) return;
    upgrade(nullptr);
    wait_upgrade_signal();
  });
}

void Supervisor::upgrade(ControlServer::Answer answer) {
  if (std::string refused = refusal(activity()); !refused.empty()) {
    spdlog::warn("upgrade refused: {}", refused);
    if (answer) answer({{"ok", false}, {"error", refused}}, true);
    return;
  }
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    std::string why = fmt::format("socketpair: {}", strerror(errno));
    if (answer) answer({{"ok", false}, {"error", why}}, true);
    return;
  }
  std::vector<int> fds;
  std::vector<std::string> names;
  if (config_.reuse_port) {
    for (int fd : slot_listen_fds_) fds.push_back(fd), names.push_back(kFdNameListen);
  } else {
    fds.push_back(listen_.fd), names.push_back(kFdNameListen);
  }
  if (control_.fd() >= 0) fds.push_back(control_.fd()), names.push_back(kFdNameControl);
  if (metrics_.fd() >= 0) fds.push_back(metrics_.fd()), names.push_back(kFdNameMetrics);
  fds.push_back(pair[1]), names.push_back(kFdNameUpgrade);
  std::string joined = fmt::format("{}", fmt::join(names, ":"));
  std::vector<char*> argv;
  for (auto& a : argv_) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = fork();
  if (pid == 0) {
    // The child of a single-threaded master: set up the fds and the environment, then exec.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (!pass_sockets_in_child(fds, joined)) _exit(126);
    // systemd watches the main pid's pings, and the new master becomes the main pid: the
    // watchdog is its to feed (WATCHDOG_PID named this master).
    if (getenv("WATCHDOG_PID") != nullptr) {
      setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
    }
    execve(exe_path_.c_str(), argv.data(), environ);
    _exit(127);
  }
  ::close(pair[1]);
  if (pid < 0) {
    ::close(pair[0]);
    std::string why = fmt::format("fork: {}", strerror(errno));
    if (answer) answer({{"ok", false}, {"error", why}}, true);
    return;
  }
  spdlog::info("upgrading: started a new master (pid {}) from {}", pid, exe_path_);
  notify(fmt::format("STATUS=upgrading: new master pid {}", pid));
  upgrade_.pid = pid;
  upgrade_.go_sent = false;
  upgrade_.agent_stopped = false;
  if (answer) {
    answer({{"progress", fmt::format("new master started (pid {})", pid)}}, false);
    upgrade_.waiters.push_back(std::move(answer));
  }
  upgrade_.channel = std::make_unique<asio::local::stream_protocol::socket>(io_);
  upgrade_.channel->assign(asio::local::stream_protocol(), pair[0]);
  upgrade_.input = std::make_unique<asio::streambuf>(4096);
  upgrade_.timer = std::make_unique<asio::steady_timer>(io_);
  auto limit = config_.startup_timeout * 2 + config_.kill_timeout;
  upgrade_.timer->expires_after(limit);
  upgrade_.timer->async_wait([this, limit](const asio::error_code& ec) {
    if (!ec)
      upgrade_failed(fmt::format("the new master was not ready within {} ms", limit.count()));
  });
  read_upgrade_channel();
}

void Supervisor::read_upgrade_channel() {
  asio::async_read_until(
      *upgrade_.channel, *upgrade_.input, '\n',
      [this, pid = upgrade_.pid](const asio::error_code& ec, std::size_t n) {
        if (upgrade_.pid != pid || !upgrade_.channel) return;  // over already
        if (ec) {
          if (ec == asio::error::operation_aborted) return;
          // Its exit, reaped in on_new_master_exit, says more: give it a moment to come. This
          // covers a new master that closed the channel and lives on.
          upgrade_.timer->expires_after(std::chrono::seconds(2));
          upgrade_.timer->async_wait([this](const asio::error_code& e) {
            if (!e) upgrade_failed("the new master closed the handshake before it was ready");
          });
          return;
        }
        std::string line(asio::buffers_begin(upgrade_.input->data()),
                         asio::buffers_begin(upgrade_.input->data()) + static_cast<long>(n) - 1);
        upgrade_.input->consume(n);
        if (line.starts_with(kLineVersion)) {
          std::string_view version = std::string_view(line).substr(kLineVersion.size());
          if (version != std::to_string(kUpgradeProtocol))
            return upgrade_failed(fmt::format(
                "the new binary speaks upgrade protocol {}, this master {}: stop and start the "
                "service instead",
                version, kUpgradeProtocol));
        } else if (line == kLinePrepared) {
          for (auto& w : upgrade_.waiters)
            w({{"progress", "new master prepared; stopping the agent"}}, false);
          stop_agent_for_upgrade();
        } else if (line == kLineReady) {
          return upgrade_succeeded();
        }
        read_upgrade_channel();
      });
}

void Supervisor::stop_agent_for_upgrade() {
  // The agent's duties (queues, schedules) must not run in both clusters at once.
  upgrade_.agent_stopped = true;
  agent_slot_.restart_timer->cancel();
  if (Child* agent = children_.find(agent_slot_.current)) {
    terminate(*agent);
    return;  // "go" when it has exited (on_exit)
  }
  upgrade_agent_gone();
}

void Supervisor::upgrade_agent_gone() {
  if (upgrade_.pid == 0 || upgrade_.go_sent || !upgrade_.channel) return;
  upgrade_.go_sent = true;
  for (auto& w : upgrade_.waiters)
    w({{"progress", "agent stopped; the new master starts its agent and workers"}}, false);
  send_line(upgrade_.channel->native_handle(), kLineGo);
}

void Supervisor::upgrade_succeeded() {
  pid_t pid = std::exchange(upgrade_.pid, 0);
  upgraded_ = true;
  upgrade_.timer->cancel();
  upgrade_.channel.reset();
  spdlog::info("upgraded: master {} serves now; this master ({}) drains its workers and exits", pid,
               pid_);
  // systemd follows the new main process (needs NotifyAccess=all, see docs/OPERATIONS.md). The
  // last thing this master tells systemd: from here on the unit's state is the new master's, and
  // a STOPPING=1 (or a STATUS) from this pid would be taken as the service's own.
  notify_systemd(fmt::format("MAINPID={}\nSTATUS=upgraded to master {}", pid, pid));
  for (auto& w : std::exchange(upgrade_.waiters, {}))
    w({{"ok", true}, {"master", pid}, {"old_master", pid_}}, true);
  // The new master answers on the same control and metrics sockets from now on.
  control_.release();
  metrics_.close();
  begin_stop(kExitOk, fmt::format("upgraded to master {}", pid));
}

void Supervisor::upgrade_failed(const std::string& why) {
  pid_t pid = std::exchange(upgrade_.pid, 0);
  if (pid == 0) return;
  if (upgrade_.timer) upgrade_.timer->cancel();
  upgrade_.channel.reset();
  // Its children die with it (their death signal takes their groups along).
  kill(pid, SIGKILL);
  spdlog::error("upgrade failed: {}; this master keeps serving", why);
  notify(fmt::format("STATUS=upgrade failed: {}", why));
  bool restart_agent = upgrade_.agent_stopped;
  upgrade_.agent_stopped = false;
  if (restart_agent && phase_ == Phase::kRunning && agent_slot_.current == 0) {
    spdlog::info("starting the agent again");
    spawn(agent_slot_);
  }
  for (auto& w : std::exchange(upgrade_.waiters, {}))
    w({{"ok", false}, {"error", "upgrade failed: " + why + "; the old master keeps serving"}},
      true);
}

bool Supervisor::on_new_master_exit(pid_t pid, int status) {
  if (pid == 0 || pid != upgrade_.pid) return false;
  upgrade_failed(fmt::format("the new master {}", exit_description(status)));
  return true;
}

// The new master's side.

void Supervisor::handshake_with_old_master() {
  old_master_ = std::make_unique<asio::local::stream_protocol::socket>(io_);
  old_master_->assign(asio::local::stream_protocol(), inherited_.upgrade);
  inherited_.upgrade = -1;
  send_line(old_master_->native_handle(),
            std::string(kLineVersion) + std::to_string(kUpgradeProtocol));
  send_line(old_master_->native_handle(), kLinePrepared);
  old_master_input_ = std::make_unique<asio::streambuf>(4096);
  asio::async_read_until(*old_master_, *old_master_input_, '\n',
                         [this](const asio::error_code& ec, std::size_t) {
                           // "go", or the old master is gone: either way the agent is ours now.
                           if (ec) spdlog::warn("the old master left before it said go");
                           spawn(agent_slot_);
                         });
}

void Supervisor::take_over_from_old_master() {
  std::string error;
  if (inherited_.control >= 0) {
    if (!control_.adopt(std::exchange(inherited_.control, -1), error))
      spdlog::warn("control socket not taken over: {}", error);
  } else {
    open_control_socket();
  }
  if (inherited_.metrics >= 0) {
    if (!metrics_.adopt(std::exchange(inherited_.metrics, -1), error))
      spdlog::warn("metrics listener not taken over: {}", error);
  } else {
    open_metrics_listener();
  }
}

void Supervisor::tell_old_master_ready() {
  if (!old_master_) return;
  send_line(old_master_->native_handle(), kLineReady);
  asio::error_code ignored;
  old_master_->close(ignored);
  old_master_.reset();
}

}  // namespace clutch::master
