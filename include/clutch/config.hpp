// The settings of a clutch cluster. Read by the master from, in rising precedence: a TOML file
// (--config FILE), CLUTCH_* environment variables, then command-line flags. Children receive the
// master's resolved copy, so every process of a cluster agrees on it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace clutch {

struct Config {
  // Worker processes; 0 means the CPUs this process may use (affinity and cgroup quota).
  unsigned workers = 0;
  // Address the master binds before any child starts; port 0 picks a free port.
  std::string host = "127.0.0.1";
  int port = 7001;
  // One SO_REUSEPORT socket per worker slot instead of one shared socket (see docs/OPERATIONS.md).
  bool reuse_port = false;
  // With reuse_port: the same client address always reaches the same live worker (socket.io and
  // other stateful protocols); a dead worker's addresses move to the others, no other address
  // moves. Default: off.
  bool sticky = false;
  // A child that is not ready this long after its start is killed (a failed start).
  std::chrono::milliseconds startup_timeout{30000};
  // How long a child may take to stop after SIGTERM before it is SIGKILLed.
  std::chrono::milliseconds kill_timeout{5000};
  // A ready child whose event loop has not turned for this long (a handler in an endless loop,
  // a deadlock, SIGSTOP) is hung: its backtrace is written to its log, then it is SIGKILLed and
  // replaced. 0 turns the check off. 30 s, as gunicorn's worker timeout.
  std::chrono::milliseconds hang_timeout{30000};
  // A worker (or the agent) whose resident memory grows past this is replaced gracefully: a new
  // worker is made ready first, then the old one drains (no request fails); the agent is
  // restarted. Read from /proc once a second. 0, the default, sets no limit.
  std::size_t max_rss = 0;
  // A worker that has served this many HTTP requests is replaced gracefully, as over max_rss
  // (gunicorn's max_requests: what a slow leak or fragmentation cannot outgrow). Each worker's
  // own limit is max_requests plus a random 0..max_requests_jitter, so that workers started
  // together are not all replaced at once. Judged from the worker's once-a-second report. 0, the
  // default, sets no limit.
  uint64_t max_requests = 0;
  uint64_t max_requests_jitter = 0;
  // On SIGTERM, SIGINT or a graceful clutchctl stop: /readyz answers 503 at once while the
  // workers keep serving for this long, so that a load balancer stops sending new requests
  // before the workers stop accepting; then the stop proceeds as usual. A second signal ends
  // the grace early. 0, the default, stops at once.
  std::chrono::milliseconds drain_grace{0};
  // A child that dies younger than this is crashing: its restarts back off exponentially.
  std::chrono::milliseconds min_uptime{1000};
  std::chrono::milliseconds restart_backoff_initial{100};
  std::chrono::milliseconds restart_backoff_max{10000};
  // Opt-in: a slot whose processes die unasked more than max_restarts times within
  // max_restarts_window makes the master stop the cluster and exit 1 (for systemd or Kubernetes
  // to act on). 0, the default, retries for ever with back-off.
  unsigned max_restarts = 0;
  std::chrono::milliseconds max_restarts_window{60000};
  // Largest messenger payload; larger sends fail with MessageTooLarge.
  std::size_t max_message_size = std::size_t{64} << 20;
  // The HTTP server's limits (http::serve without explicit options).
  std::size_t http_max_header_size = 16 * 1024;
  std::size_t http_max_body_size = 8 * 1024 * 1024;
  std::chrono::milliseconds http_read_timeout{10000};
  std::chrono::milliseconds http_idle_timeout{60000};
  std::chrono::milliseconds http_handler_timeout{60000};  // 0: none
  std::chrono::milliseconds http_write_timeout{60000};
  // Load shedding, per worker, off by default: a request that waited longer than this before
  // its handler could start (X-Request-Start from the proxy, else from when the worker took the
  // connection or read the request's first byte) is answered 503 with Retry-After at once; so is
  // one that finds http_max_in_flight requests already with the worker's handlers.
  std::chrono::milliseconds http_max_queue_time{0};
  uint64_t http_max_in_flight = 0;
  // Upper bounds of clutch_http_request_duration_seconds, in microseconds: from 50 us, so that a
  // fast handler's p99 reads as what it is rather than as the first bucket.
  std::vector<uint64_t> http_duration_buckets_us = {
      50,    100,    250,    500,    1000,    2500,    5000,    10000,   25000,
      50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
  // The master's control socket for clutchctl: empty picks $XDG_RUNTIME_DIR/clutch/APP.sock or
  // /tmp/clutch-UID/APP.sock; "off" opens none.
  std::string control_socket;
  // A file the master writes its pid to (empty, the default: none); an upgrade's new master
  // writes its own once it serves, and a master removes the file at exit while it names it.
  std::string pid_file;
  // The master's metrics listener, "HOST:PORT" (port 0: any free one), serving /metrics
  // (Prometheus text), /healthz and /readyz. Empty, the default: off.
  std::string metrics_listen;
  // The dashboard (GET / on metrics_listen) shows reload and scale buttons; they act only for a
  // loopback client running as the master's user or root. Default: read-only.
  bool dashboard_controls = false;
  // The file mode of a unix: listening socket (host = "unix:/run/app.sock"), e.g. 0660 so that
  // a web server in the group may connect.
  unsigned socket_mode = 0660;
  // An exception escaping user code with no one to tell (a timer, a posted function, a hook, a
  // plain message's handler, an ack or reply callback): "log" (default) logs it and goes on;
  // "exit" logs it and exits the process (code 70), which the master replaces, as egg does.
  std::string on_uncaught_exception = "log";
  // Log files instead of stderr: DIR/APP.master.log, APP.agent.log, APP.worker.log (reopened on
  // SIGUSR1, for logrotate). Empty, the default: stderr.
  std::string log_dir;
  // "text" (the default) or "json" (one object a line: time, proc, pid, level, msg).
  std::string log_format = "text";
  // Started as root, the agent and workers run as this user (and group: its own unless `group`
  // is set); the master stays root only to bind, spawn and supervise. Empty: no change.
  std::string user;
  std::string group;
  // The file the settings came from, if any (informational).
  std::string config_file;
  // The application's own settings: the [app] table of the config file, flattened ("db.host"
  // for [app.db] host), each value as text (strings as written, other values in TOML form).
  // Every process sees the master's copy. Any other table in the file is an error, so a clutch
  // key placed under a section by mistake is never silently ignored.
  std::map<std::string, std::string> app;
};

// A setting that cannot be used; what() names the key and the value.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace clutch
