#include "runtime/child_main.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <set>
#include <system_error>

#include "common/child_exit_codes.hpp"
#include "common/config_keys.hpp"
#include "common/credentials.hpp"
#include "common/log.hpp"
#include "ipc/channel.hpp"
#include "messaging/control_ops.hpp"
#include "runtime/hang_report.hpp"
#include "runtime/messenger_client.hpp"
#include "runtime/metrics_access.hpp"
#include "runtime/metrics_reporter.hpp"
#include "runtime/process_context.hpp"
#include "runtime/process_hygiene.hpp"
#include "runtime/uncaught.hpp"

namespace clutch::runtime {
namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atoi(v) : fallback;
}

}  // namespace

bool started_by_master() {
  return std::getenv("CLUTCH_INTERNAL_ROLE") != nullptr;
}

namespace {
// Under UBSan, the first member call on an error category checks its dynamic type, and that check
// probes memory through a pipe: in a worker out of descriptors (EMFILE on accept, where Asio
// compares error codes) it fails and reports a false "invalid vptr". The messenger no longer
// makes such comparisons at start-up (it reads with recvmsg), so make them here, while
// descriptors are plentiful. Costs nothing in any build.
void settle_error_categories() {
  // The check is on the left operand's category: one of each.
  const asio::error_code codes[] = {asio::error::would_block, asio::error::eof,
                                    asio::error::host_not_found, asio::error::service_not_found,
                                    std::make_error_code(std::errc::too_many_files_open)};
  int same = 0;
  for (const auto& code : codes) same += code == asio::error_code() ? 1 : 0;
  volatile int sink = same;
  (void)sink;
}
}  // namespace

int child_main(const std::string& app_name, const Setup& agent_setup, const Setup& worker_setup,
               const Components& components) {
  settle_error_categories();
  std::string role_name = std::getenv("CLUTCH_INTERNAL_ROLE");
  int master_pid = env_int("CLUTCH_INTERNAL_MASTER_PID", 0);
  const char* config_text = std::getenv("CLUTCH_INTERNAL_CONFIG");
  Config config = deserialize_config(config_text != nullptr ? config_text : "");
  // The app's code never runs as root when a user is configured. First, because a change of
  // credentials clears the death signal set next.
  if (!config.user.empty()) {
    try {
      drop_privileges(resolve_credentials(config.user, config.group));
    } catch (const std::exception& e) {
      std::cerr << app_name << " " << role_name << ": " << e.what() << std::endl;
      return 1;
    }
  }
  // No orphans: die with the master, and take any descendants along.
  if (!die_with_master(master_pid)) return 1;
  signal(SIGPIPE, SIG_IGN);
  install_backtrace_on_signal();

  ProcessIdentity id;
  id.role = role_name == "agent" ? Role::kAgent : Role::kWorker;
  id.worker_index = env_int("CLUTCH_INTERNAL_WORKER_INDEX", -1);
  id.listen_fd = env_int("CLUTCH_INTERNAL_LISTEN_FD", -1);
  id.port = env_int("CLUTCH_INTERNAL_PORT", 0);
  id.replacement = env_int("CLUTCH_INTERNAL_REPLACEMENT", 0) == 1;
  id.master_pid = master_pid;
  int ipc_fd = env_int("CLUTCH_INTERNAL_IPC_FD", 3);
  scrub_internal_environment();
  // The channel and port had to survive the exec; nothing this process holds past stderr may
  // survive the next one (a system() job).
  close_on_exec_above(STDERR_FILENO);
  std::string role_file = app_name + (id.role == Role::kAgent ? ".agent.log" : ".worker.log");
  try {
    init_logging(id.role == Role::kAgent ? app_name + " agent"
                                         : fmt::format("{} worker {}", app_name, id.worker_index),
                 LogOptions{config.log_dir, config.log_format, role_file});
  } catch (const ConfigError& e) {
    // The master opened its own file in the same directory: this is rare (a full disk, a limit).
    init_logging(app_name + " " + role_name);
    spdlog::error("{}", e.what());
  }

  asio::io_context io(1);
  auto channel =
      std::make_shared<ipc::Channel>(io, ipc_fd, config.max_message_size + ipc::kMaxActionLength);
  channel->set_turn_budget(std::chrono::milliseconds(20));
  auto messenger = std::make_shared<MessengerClient>(io, channel, id.role, config.max_message_size);
  auto context = std::make_unique<ProcessContext>(io, config, id, messenger);

  int exit_code = 0;
  auto exit_now = [&](int code) {
    exit_code = code;
    channel->close();
    io.stop();
  };
  messenger->on_cluster_ready = [&] { context->cluster_ready(); };
  messenger->master_pid = master_pid;
  set_exit_on_uncaught(config.on_uncaught_exception == "exit", [&] {
    if (context->stopping()) return;  // a stop already under way ends the process anyway
    context->begin_stop([&](int) { exit_now(kExitUncaught); });
  });
  messenger->handled_counter = &detail::MetricsAccess::counter(
      context->metrics(), "clutch_messenger_handled_total",
      "Messages handed to this process's handlers (counted by the receiver).");
  // An operator's question (clutchctl jobs, queue ...), answered by the feature that registered it.
  messenger->on_master_control = [&](std::string_view op, std::string_view payload) {
    if (op != messaging::kOpAsk) {
      // A master of another version, or a bug: said once per op, never silently dropped.
      static std::set<std::string, std::less<>> told;
      if (told.emplace(op).second)
        spdlog::warn("the master sent an unknown control frame '{}': ignored", op);
      return;
    }
    context->operator_commands().handle(payload, [&](std::string answer) {
      messenger->send_control(messaging::kOpAnswer, answer);
    });
  };

  // The master orchestrates stops: SIGTERM starts this process's drain. SIGINT and SIGQUIT are
  // taken (not obeyed) because a terminal's Ctrl-C reaches the whole process group and the
  // master will stop the children in the right order itself.
  asio::signal_set signals(io, SIGTERM, SIGINT, SIGQUIT);
  signals.add(SIGHUP);
  signals.add(SIGUSR1);  // reopen the log file (the master passes logrotate's signal on)
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](const asio::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGTERM) context->begin_stop(exit_now);
      if (sig == SIGUSR1) reopen_logs();
      wait_signal();
    });
  };
  wait_signal();

  try {
    const Setup& setup = id.role == Role::kAgent ? agent_setup : worker_setup;
    if (setup) setup(*context);
    for (const auto& component : components) {
      if (id.role == Role::kAgent)
        component->install_in_agent(*context, context->operator_commands());
      else
        component->install_in_worker(*context);
    }
  } catch (const std::exception& e) {
    spdlog::error("setup failed: {}", e.what());
    context->stop_after_failed_setup(config.kill_timeout);
    messenger->send_control(messaging::kOpFatal, e.what());
    channel->flush_blocking_and_close();
    // A declaration the setup could not use (a bad queue URL, a database that does not exist, a
    // table of another shape): the master's start fails as for a bad configuration, with exit 2.
    return dynamic_cast<const ConfigError*>(&e) != nullptr ? kExitBadSetup : 1;
  } catch (...) {
    context->stop_after_failed_setup(config.kill_timeout);
    messenger->send_control(messaging::kOpFatal, "setup threw a non-standard exception");
    channel->flush_blocking_and_close();
    return 1;
  }
  messenger->send_control(messaging::kOpReady);
  // One line per start, as gunicorn's "Booting worker": the log shows every process's life.
  spdlog::info("set up{}", id.replacement ? " (a replacement)" : "");
  MetricsReporter reporter(*context, *messenger, config.max_message_size);
  reporter.start();
  context->before_exit = [&] { reporter.report(); };
  // Liveness for the master's hang detection: a loop that stops turning stops beating.
  Heartbeat heartbeat(io, heartbeat_interval(config.hang_timeout),
                      [&] { messenger->send_control(messaging::kOpBeat); });
  if (config.hang_timeout.count() > 0) heartbeat.start();
  channel->start([&](const ipc::FrameView& frame, std::byte*) { messenger->handle_frame(frame); },
                 [&](const std::string& reason, bool protocol_error) {
                   if (protocol_error)
                     spdlog::error("bad frame from the master: {}", reason);
                   else
                     spdlog::debug("master channel closed: {}", reason);
                   // Without its master a child has nothing to do: leave at once. Unasked (not
                   // stopping), the master died or gave up on this child: take the group (what
                   // it started) along now. The master's death signal would, but the channel's
                   // end can be read first, and an exit here left those behind (issue 22.2).
                   if (!context->stopping()) kill(0, SIGKILL);
                   exit_now(context->stopping() ? 0 : 1);
                 });
  io.run();
  // From here on the loop no longer answers signals: a late SIGTERM (the master's, after this
  // process stopped on a signal of its own) must not turn a clean exit into a kill.
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGUSR1, SIG_IGN);
  return exit_code;
}

}  // namespace clutch::runtime
