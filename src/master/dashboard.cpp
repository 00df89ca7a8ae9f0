// The live dashboard on the metrics listener: GET / is one page (HTML, CSS and script embedded
// in the binary, no CDN) that polls GET /api/status every second. The master answers from what
// it already knows; schedules and queues come from the agent, asked at most once a second while
// someone watches, so an open dashboard costs the cluster next to nothing. Read-only.
#include <fmt/format.h>

#include <algorithm>
#include <fstream>

#include <unistd.h>

#include "master/supervisor.hpp"

namespace clutch::master {
namespace {

// The names a browser may use for this dashboard: its listen address, and for a loopback one the
// loopback names with the same port. A page on another site that resolves its own name to this
// address (DNS rebinding) sends its own name as Host, and its own origin.
bool names_this_dashboard(std::string_view host, const std::string& listen_address) {
  if (host == listen_address) return true;
  auto colon = listen_address.rfind(':');
  if (colon == std::string::npos) return false;
  std::string_view address = std::string_view(listen_address).substr(0, colon);
  std::string_view port = std::string_view(listen_address).substr(colon);  // ":9464"
  bool loopback = address == "127.0.0.1" || address == "[::1]";
  if (!loopback || !host.ends_with(port)) return false;
  std::string_view name = host.substr(0, host.size() - port.size());
  return name == "localhost" || name == "127.0.0.1" || name == "[::1]";
}

// The last `keep` lines of a file, reading at most its last 64 KiB.
std::vector<std::string> tail(const std::string& path, std::size_t keep) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  std::streamoff size = in.tellg();
  std::streamoff from = std::max<std::streamoff>(0, size - 65536);
  in.seekg(from);
  std::string text(static_cast<std::size_t>(size - from), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  std::vector<std::string> lines;
  std::size_t start = 0;
  if (from > 0) start = text.find('\n') + 1;  // the first line is cut
  for (std::size_t eol; (eol = text.find('\n', start)) != std::string::npos; start = eol + 1)
    lines.push_back(text.substr(start, eol - start));
  if (lines.size() > keep) lines.erase(lines.begin(), lines.end() - static_cast<long>(keep));
  return lines;
}

}  // namespace

namespace {

const char* const kDashboardPage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>clutch</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 20px;display:flex;gap:24px;align-items:baseline}
header h1{font-size:18px;margin:0}
#state{font-weight:600;padding:2px 10px;border-radius:10px;background:#888}
#state.ready{background:#2e8b57}#state.degraded,#state.stopping{background:#c0392b}
#state.reloading,#state.scaling,#state.starting{background:#d68910}
main{padding:16px 20px;display:grid;gap:16px}
section{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px #0002}
h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef2;white-space:nowrap}
th{font-weight:600;color:#5a6375;font-size:12px;text-transform:uppercase}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.down td{color:#c0392b}
svg.spark{width:90px;height:20px;vertical-align:middle}
svg.spark polyline{fill:none;stroke:#3b6fd6;stroke-width:1.5}
header button{margin-left:6px}#acted{margin-left:8px;color:#cfd6e4}
#log{font:12px/1.35 ui-monospace,monospace;white-space:pre-wrap;max-height:320px;overflow:auto;margin:0}
.muted{color:#8a93a6}
#log .warn{color:#b26a00;font-weight:600}#log .err{color:#c62828;font-weight:600}
</style></head><body>
<header><h1 id="app">clutch</h1><span id="state">…</span><span id="summary" class="muted"></span>
<span id="controls" hidden><button data-act="/api/reload" data-confirm="Reload every worker (rolling)?">Reload</button>
<button data-act="/api/scale?delta=1">+1 worker</button><button data-act="/api/scale?delta=-1" data-confirm="Drain and stop one worker?">−1 worker</button>
<span id="acted"></span></span></header>
<main>
<section><h2>Processes</h2><table id="procs"><thead><tr><th>Role</th><th>Slot</th><th>PID</th>
<th>State</th><th>Uptime</th><th>Restarts</th><th>RSS</th><th>CPU</th><th>Msgs/s</th><th>HTTP/s</th>
<th>In flight</th><th>Last exit</th></tr></thead><tbody></tbody></table></section>
<section><h2>Schedules</h2><table id="jobs"><thead><tr><th>Job</th><th>Schedule</th><th>Next run</th>
<th>Last run</th><th>Result</th><th>Running</th><th>OK</th><th>Failed</th><th>Skipped</th></tr></thead>
<tbody></tbody></table></section>
<section><h2>Queues</h2><table id="queues"><thead><tr><th>Consumer</th><th>Pending</th><th>In flight</th>
<th>Oldest</th><th>Dead letters</th><th>Handled</th><th>Rate/s</th></tr></thead><tbody></tbody></table></section>
<section><h2>Log</h2><pre id="log" class="muted">set log_dir to see the log here</pre></section>
</main>
<script>
"use strict";
const history = {};  // per slot: rss, cpu% samples for the sparklines
let last = null;
const esc = s => String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
const mib = b => (b / 1048576).toFixed(1) + " MiB";
function dur(ms) {
  if (ms < 60000) return (ms / 1000).toFixed(1) + "s";
  if (ms < 3600000) return Math.floor(ms / 60000) + "m" + String(Math.floor(ms / 1000) % 60).padStart(2, "0") + "s";
  return Math.floor(ms / 3600000) + "h" + String(Math.floor(ms / 60000) % 60).padStart(2, "0") + "m";
}
function spark(values) {
  if (values.length < 2) return "";
  const max = Math.max(...values, 1e-9), w = 90, h = 20;
  const pts = values.map((v, i) => (i * w / (values.length - 1)).toFixed(1) + "," + (h - 1 - v / max * (h - 2)).toFixed(1));
  return '<svg class="spark" viewBox="0 0 90 20"><polyline points="' + pts.join(" ") + '"/></svg>';
}
function push(key, name, v) {
  const h = history[key] = history[key] || {};
  const a = h[name] = h[name] || [];
  a.push(v);
  if (a.length > 60) a.shift();
  return a;
}
function rows(id, html) { document.querySelector("#" + id + " tbody").innerHTML = html; }
function render(s) {
  document.title = s.app + " — clutch";
  document.getElementById("app").textContent = s.app;
  const state = document.getElementById("state");
  state.textContent = s.state;
  state.className = s.state;
  document.getElementById("summary").textContent = "generation " + s.generation + " · up " + dur(s.uptime_ms) +
      " · " + s.listening + " · master " + s.master + " (" + mib(s.master_rss_bytes) + ")";
  const dt = last ? (s.uptime_ms - last.uptime_ms) / 1000 : 0;
  const before = {};
  if (last) for (const p of last.processes) before[p.pid] = p;
  rows("procs", s.processes.map(p => {
    const key = p.role + ":" + p.slot, prev = before[p.pid];
    const cpu = prev && dt > 0 ? 100 * (p.cpu_seconds - prev.cpu_seconds) / dt : 0;
    const msgs = prev && dt > 0 ? (p.handled - prev.handled) / dt : 0;
    const http = prev && dt > 0 ? (p.http_requests - prev.http_requests) / dt : 0;
    return '<tr class="' + (p.pid ? "" : "down") + '" data-slot="' + esc(p.slot) + '" data-role="' + esc(p.role) + '">' +
      "<td>" + esc(p.role) + "</td><td>" + (p.slot < 0 ? "-" : p.slot) + "</td><td class=n>" + p.pid +
      '</td><td class="state">' + esc(p.state) + "</td><td class=n>" + dur(p.uptime_ms) +
      '</td><td class="n restarts">' + p.restarts + "</td><td class=n>" + mib(p.rss_bytes) + " " +
      spark(push(key, "rss", p.rss_bytes)) + "</td><td class=n>" + cpu.toFixed(1) + "% " + spark(push(key, "cpu", cpu)) +
      "</td><td class=n>" + msgs.toFixed(0) + "</td><td class=n>" + http.toFixed(0) + "</td><td class=n>" + p.in_flight +
      "</td><td>" + esc(p.last_exit || "") + "</td></tr>";
  }).join(""));
  // The agent's figures are asked only while someone watches: on a first look they may be from
  // the last time anyone did. Say so instead of showing them as now.
  const age = s.agent_view_age_ms;
  const stale = age < 0 || age > 3000;
  const asking = (n) => '<tr><td colspan=' + n + ' class="muted stale">asking the agent…' +
      (age > 0 ? " (its last answer is " + dur(age) + " old)" : "") + "</td></tr>";
  if (stale) {
    rows("jobs", asking(9));
    rows("queues", asking(7));
  } else {
    rows("jobs", s.jobs.length ? s.jobs.map(j => "<tr><td>" + esc(j.name) + "</td><td>" + esc(j.schedule) + "</td><td>" +
        esc(j.disabled ? "disabled" : j.next_fire) + "</td><td>" + esc(j.last_run || "-") + "</td><td>" +
        esc(j.last_result || "-") + "</td><td>" + (j.running ? "yes" : "") + "</td><td class=n>" + j.runs_ok +
        "</td><td class=n>" + j.runs_failed + "</td><td class=n>" + j.skipped + "</td></tr>").join("")
        : '<tr><td colspan=9 class=muted>no scheduled jobs</td></tr>');
    rows("queues", s.queues.length ? s.queues.map(q => "<tr><td>" + esc(q.name) + "</td><td class=n>" + q.pending +
        "</td><td class=n>" + q.in_flight + "</td><td class=n>" + (q.oldest_age_ms < 0 ? "-" : dur(q.oldest_age_ms)) +
        "</td><td class=n>" + q.dead_letters + "</td><td class=n>" + q.handled + "</td><td class=n>" +
        q.rate_per_s.toFixed(1) + "</td></tr>").join("")
        : '<tr><td colspan=7 class=muted>no queue consumers</td></tr>');
  }
  document.getElementById("controls").hidden = !s.controls;
  if (s.log.length) {
    // Newest at the bottom and in view, unless the reader scrolled up to read; warnings and
    // errors stand out.
    const log = document.getElementById("log");
    const following = log.className === "muted" ||
        log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    log.className = "";
    log.innerHTML = s.log.map(line => {
      const level = / (warning|error|critical): /.exec(line);
      return level ? '<span class="' + (level[1] === "warning" ? "warn" : "err") + '">' + esc(line) +
          "</span>" : esc(line);
    }).join("\n");
    if (following) log.scrollTop = log.scrollHeight;
  }
  last = s;
}
for (const b of document.querySelectorAll("#controls button")) {
  b.onclick = async () => {
    // What stops work in progress is asked first; adding a worker is not.
    if (b.dataset.confirm && !confirm(b.dataset.confirm)) return;
    const r = await fetch(b.dataset.act, {method: "POST", headers: {"X-Clutch-Action": "1"}});
    const a = await r.json();
    document.getElementById("acted").textContent = a.ok ? "started" : a.error;
  };
}
async function poll() {
  try {
    const r = await fetch("/api/status", {cache: "no-store"});
    if (r.ok) render(await r.json());
    else document.getElementById("state").textContent = "HTTP " + r.status;
  } catch (e) {
    const state = document.getElementById("state");
    state.textContent = "master unreachable";
    state.className = "stopping";
  }
  setTimeout(poll, 1000);
}
poll();
</script></body></html>
)HTML";

}  // namespace

nlohmann::json Supervisor::dashboard_json() {
  auto now = Clock::now();
  if (now - dashboard_.asked_at > std::chrono::seconds(1) && dashboard_.asks_open == 0) {
    dashboard_.asked_at = now;
    for (const char* cmd : {"jobs", "queues"}) {
      Child* agent = children_.find(agent_slot_.current);
      if (agent == nullptr || agent->state != ChildState::kReady || !agent->connected()) break;
      ++dashboard_.asks_open;
      std::string key = cmd;
      pid_t by = agent->pid;
      ask(
          *agent, {{"cmd", cmd}},
          [this, key, by](const nlohmann::json& answer, bool) {
            --dashboard_.asks_open;
            if (!answer.value("ok", false)) return;
            if (by != dashboard_.answered_by) dashboard_.agent_view = nlohmann::json::object();
            dashboard_.agent_view[key] = answer[key];
            dashboard_.answered_at = Clock::now();
            dashboard_.answered_by = by;
          },
          Millis(2000));
    }
  }
  nlohmann::json out = status_json();
  out["jobs"] = dashboard_.agent_view.value("jobs", nlohmann::json::array());
  out["queues"] = dashboard_.agent_view.value("queues", nlohmann::json::array());
  // How old the agent's figures are: the page marks them rather than show, unmarked, what the
  // agent said the last time anyone watched (asks are made only while someone does).
  out["agent_view_age_ms"] =
      dashboard_.answered_at == Clock::time_point{}
          ? -1
          : std::chrono::duration_cast<Millis>(now - dashboard_.answered_at).count();
  const auto& routed = router_.routed();
  uint64_t messages = 0;
  for (uint64_t n : routed) messages += n;
  out["messages_routed"] = messages;
  std::vector<std::string> log;
  if (!config_.log_dir.empty()) {
    for (const char* role : {"master", "agent", "worker"}) {
      for (auto& line : tail(fmt::format("{}/{}.{}.log", config_.log_dir, app_name_, role), 30))
        log.push_back(std::move(line));
    }
    std::stable_sort(log.begin(), log.end(), [](const std::string& a, const std::string& b) {
      return a.substr(0, 32) < b.substr(0, 32);
    });
    if (log.size() > 30) log.erase(log.begin(), log.end() - 30);
  }
  out["log"] = log;
  out["controls"] = config_.dashboard_controls;
  return out;
}

MetricsServer::Page Supervisor::dashboard_action(const MetricsServer::Request& request) {
  auto refuse = [](int status, std::string why) {
    return MetricsServer::Page{status, "application/json",
                               nlohmann::json{{"ok", false}, {"error", std::move(why)}}.dump()};
  };
  if (!config_.dashboard_controls)
    return refuse(403, "the dashboard is read-only (set dashboard_controls = true)");
  // A cross-site form cannot add a header, and a script from another origin is stopped by the
  // browser's preflight, which this server never answers.
  if (!request.action_header) return refuse(403, "missing the X-Clutch-Action header");
  // A header is no proof against a page whose own name resolves here (DNS rebinding): it is the
  // same origin to the browser. Its Host and Origin still name the other site.
  std::string address = metrics_.address();
  if (!names_this_dashboard(request.host, address)) {
    return refuse(403, fmt::format("Host '{}' is not this dashboard's address ({}): refused",
                                   request.host, address));
  }
  if (!request.origin.empty() &&
      !(request.origin.starts_with("http://") &&
        names_this_dashboard(std::string_view(request.origin).substr(7), address))) {
    return refuse(403, fmt::format("a page from {} may not drive this dashboard", request.origin));
  }
  // The control socket's rule: the master's own user, or root.
  if (request.peer_uid < 0 ||
      (request.peer_uid != static_cast<long>(geteuid()) && request.peer_uid != 0)) {
    return refuse(403, "only a local client of the master's user (or root) may act");
  }
  auto accepted = [](nlohmann::json what) {
    what["ok"] = true;
    return MetricsServer::Page{202, "application/json", what.dump()};
  };
  if (request.path == "/api/reload") {
    if (std::string refused = refusal(activity()); !refused.empty()) return refuse(409, refused);
    reload("dashboard");
    return accepted({{"started", "reload"}});
  }
  if (request.path == "/api/scale") {
    long long delta = 0;
    if (request.query.rfind("delta=", 0) == 0) delta = std::atoll(request.query.c_str() + 6);
    long long target = static_cast<long long>(worker_slots_.size()) + delta;
    if (delta == 0) return refuse(400, "scale takes ?delta=N (N not 0)");
    if (std::string refused = scale_target_refusal(target); !refused.empty())
      return refuse(400, refused);
    // A refusal is answered at once, an accepted scale when it is done (logged, not waited for).
    auto outcome = std::make_shared<nlohmann::json>();
    scale(static_cast<std::size_t>(target),
          [outcome](const nlohmann::json& line, bool) { *outcome = line; });
    if (outcome->is_object() && !outcome->value("ok", true))
      return refuse(409, outcome->value("error", "refused"));
    return accepted({{"scaling_to", target}});
  }
  return refuse(404, "no such action: /api/reload, /api/scale?delta=N");
}

const char* dashboard_page() {
  return kDashboardPage;
}

}  // namespace clutch::master
