#include "control_client.hpp"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <thread>
#include <vector>

namespace clutchctl {
namespace {

using nlohmann::json;

// The directories a master puts its default socket in, in the order it tries them.
std::vector<std::string> socket_dirs() {
  std::vector<std::string> dirs;
  if (const char* runtime = std::getenv("XDG_RUNTIME_DIR"); runtime != nullptr && *runtime)
    dirs.push_back(std::string(runtime) + "/clutch");
  dirs.push_back(fmt::format("/tmp/clutch-{}", geteuid()));
  return dirs;
}

// The socket to use, or an error naming what to pass.
std::string find_socket(const Target& t, std::string& error) {
  if (!t.socket.empty()) return t.socket;
  std::vector<std::string> found;
  for (const auto& dir : socket_dirs()) {
    std::error_code ec;
    if (!t.app.empty()) {
      std::string path = dir + "/" + t.app + ".sock";
      if (std::filesystem::exists(path, ec)) return path;
      continue;
    }
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (entry.path().extension() == ".sock") found.push_back(entry.path().string());
    }
  }
  if (!t.app.empty()) {
    error = fmt::format("no control socket for app '{}' (looked in {}); pass --socket PATH", t.app,
                        fmt::join(socket_dirs(), ", "));
  } else if (found.size() == 1) {
    return found.front();
  } else {
    error = found.empty() ? fmt::format("no cluster found (looked in {}); pass --app or --socket",
                                        fmt::join(socket_dirs(), ", "))
                          : fmt::format("several clusters: {}; pass --app or --socket",
                                        fmt::join(found, ", "));
  }
  return {};
}

}  // namespace

std::string mib(double bytes) {
  return fmt::format("{:.1f} MiB", bytes / (1 << 20));
}

std::string seconds(double ms) {
  if (ms < 60000) return fmt::format("{:.1f}s", ms / 1000);
  if (ms < 3600000) return fmt::format("{:.0f}m{:02.0f}s", ms / 60000, std::fmod(ms / 1000, 60));
  return fmt::format("{:.0f}h{:02.0f}m", ms / 3600000, std::fmod(ms / 60000, 60));
}

namespace {

// A worker's queue-time p99 of the last 10-20 s: "at most" its bucket's bound; "-" with no
// requests lately (and for the agent).
std::string queue_text(const json& p) {
  auto it = p.find("queue_p99_seconds");
  if (it == p.end() || !it->is_number()) return "-";
  double s = it->get<double>();
  if (s < 0) return ">10s";  // past the histogram's last bound
  if (s < 1) return fmt::format("<={:.0f}ms", s * 1000);
  return fmt::format("<={:.1f}s", s);
}

void print_status(const json& s) {
  std::cout << fmt::format("{}: {}, generation {}, up {}, listening on {}, master {} ({})\n",
                           s.value("app", ""), s.value("state", ""), s.value("generation", 0),
                           seconds(s.value("uptime_ms", 0.0)), s.value("listening", ""),
                           s.value("master", 0), mib(s.value("master_rss_bytes", 0.0)));
  std::cout << fmt::format(
      "{:<7} {:>4} {:>8} {:<12} {:>8} {:>8} {:>10} {:>7} {:>9} {:>9} {:>9} {:>9}  {}\n", "ROLE",
      "SLOT", "PID", "STATE", "UPTIME", "RESTARTS", "RSS", "CPU", "IN FLIGHT", "HANDLED", "HTTP",
      "QUEUE p99", "LAST EXIT");
  for (const auto& p : s["processes"]) {
    int slot = p.value("slot", -1);
    double uptime = p.value("uptime_ms", 0.0);
    double cpu = p.value("cpu_seconds", 0.0);
    std::string cpu_text = uptime > 0 ? fmt::format("{:.1f}%", 100 * cpu / (uptime / 1000)) : "-";
    std::cout << fmt::format(
        "{:<7} {:>4} {:>8} {:<12} {:>8} {:>8} {:>10} {:>7} {:>9} {:>9} {:>9} {:>9}  {}\n",
        p.value("role", ""), slot < 0 ? std::string("-") : std::to_string(slot), p.value("pid", 0),
        p.value("state", ""), seconds(uptime), p.value("restarts", 0),
        mib(p.value("rss_bytes", 0.0)), cpu_text, p.value("in_flight", 0),
        static_cast<uint64_t>(p.value("handled", 0.0)),
        static_cast<uint64_t>(p.value("http_requests", 0.0)), queue_text(p),
        p.value("last_exit", ""));
  }
}

}  // namespace

// Sends `request` and calls `on_line` for every answer line until the one marked done; returns
// the last line, or an object with "error" if the conversation broke.
json converse(const Target& t, const json& request,
              const std::function<void(const json&)>& on_line) {
  std::string error;
  std::string path = find_socket(t, error);
  if (path.empty()) return {{"ok", false}, {"error", error}, {"unreachable", true}};
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    std::string why = std::strerror(errno);
    close(fd);
    return {{"ok", false},
            {"error", fmt::format("cannot connect to {}: {}", path, why)},
            {"unreachable", true}};
  }
  std::string line = request.dump() + "\n";
  // A refused client is answered and dropped at once: its send may fail, the answer is there.
  (void)send(fd, line.data(), line.size(), MSG_NOSIGNAL);
  std::string buffer;
  char chunk[65536];
  json last = {{"ok", false}, {"error", "the cluster closed the connection before answering"}};
  for (;;) {
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    buffer.append(chunk, static_cast<std::size_t>(n));
    bool done = false;
    for (std::size_t eol; (eol = buffer.find('\n')) != std::string::npos;) {
      json answer = json::parse(buffer.substr(0, eol), nullptr, false);
      buffer.erase(0, eol + 1);
      if (answer.is_discarded()) continue;
      if (on_line) on_line(answer);
      if (answer.value("done", false)) {
        last = answer;
        done = true;
      }
    }
    if (done) break;
  }
  close(fd);
  return last;
}

int finish(const Target& t, const json& answer) {
  if (t.json) std::cout << answer.dump() << "\n";
  if (answer.value("ok", false)) return 0;
  if (!t.json) std::cerr << "clutchctl: " << answer.value("error", std::string("failed")) << "\n";
  return answer.value("unreachable", false) ? 2 : 1;
}

int status_command(const Target& t, bool watch) {
  for (int round = 0;; ++round) {
    json answer = converse(t, {{"v", 1}, {"cmd", "status"}}, nullptr);
    if (!watch || !answer.value("ok", false)) {
      if (answer.value("ok", false) && !t.json) print_status(answer);
      return finish(t, answer);
    }
    std::cout << "\x1b[H\x1b[2J";  // clear the terminal and draw again, as top does
    print_status(answer);
    std::cout.flush();
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

int reload_command(const Target& t) {
  json answer = converse(t, {{"v", 1}, {"cmd", "reload"}}, [&](const json& line) {
    if (!t.json && line.contains("progress"))
      std::cout << line["progress"].get<std::string>() << "\n";
  });
  if (!t.json && answer.value("ok", false)) std::cout << answer.value("outcome", "") << "\n";
  return finish(t, answer);
}

int upgrade_command(const Target& t) {
  json answer = converse(t, {{"v", 1}, {"cmd", "upgrade"}}, [&](const json& line) {
    if (!t.json && line.contains("progress"))
      std::cout << line["progress"].get<std::string>() << "\n";
  });
  if (!t.json && answer.value("ok", false)) {
    std::cout << fmt::format("upgraded: master {} serves now (master {} drains and exits)\n",
                             answer.value("master", 0), answer.value("old_master", 0));
  }
  return finish(t, answer);
}

namespace {
// Whether `pid` is gone (a zombie counts as gone: it has closed everything, the port included).
bool process_gone(int pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}
}  // namespace

int stop_command(const Target& t, bool now, bool wait) {
  json answer = converse(t, {{"v", 1}, {"cmd", "stop"}, {"now", now}}, nullptr);
  if (!answer.value("ok", false) || !wait || answer.value("master", 0) <= 0) {
    if (!t.json && answer.value("ok", false))
      std::cout << "stopping " << answer.value("stopping", "") << "\n";
    return finish(t, answer);
  }
  // Returns once the master is gone, so that `stop && start` finds the port free. The master
  // bounds its own stop (kill_timeout per process, then SIGKILL); this bound is only against a
  // master that cannot end at all.
  int pid = answer.value("master", 0);
  auto bound = std::chrono::milliseconds(3 * answer.value("kill_timeout_ms", 30000) + 10000);
  auto deadline = std::chrono::steady_clock::now() + bound;
  if (!t.json) std::cout << "stopping " << answer.value("stopping", "") << "..." << std::flush;
  while (!process_gone(pid)) {
    if (std::chrono::steady_clock::now() > deadline) {
      if (!t.json) std::cout << "\n";
      std::cerr << fmt::format("clutchctl: master {} still runs {} ms after the stop\n", pid,
                               bound.count());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!t.json) std::cout << " stopped (master " << pid << " exited)\n";
  return finish(t, answer);
}

int scale_command(const Target& t, const std::string& how_many) {
  json request = {{"v", 1}, {"cmd", "scale"}};
  char* end = nullptr;
  long long n = std::strtoll(how_many.c_str(), &end, 10);
  if (how_many.empty() || *end != '\0') {
    std::cerr << "clutchctl: scale takes N, +N or -N, not '" << how_many << "'\n";
    return 2;
  }
  if (how_many[0] == '+' || how_many[0] == '-')
    request["delta"] = n;
  else
    request["workers"] = n;
  json answer = converse(t, request, nullptr);
  if (!t.json && answer.value("ok", false))
    std::cout << "scaled to " << answer.value("workers", 0) << " worker(s)\n";
  return finish(t, answer);
}

int restart_command(const Target& t, const std::string& which) {
  json request = {{"v", 1}, {"cmd", "restart"}};
  char* end = nullptr;
  if (which == "agent") {
    request["slot"] = "agent";
  } else if (which.rfind("pid:", 0) == 0) {
    request["pid"] = std::strtoll(which.c_str() + 4, &end, 10);
  } else {
    request["slot"] = std::strtoll(which.c_str(), &end, 10);
  }
  if (which != "agent" && (end == nullptr || *end != '\0' || which.empty())) {
    std::cerr << "clutchctl: restart takes a worker slot, 'agent' or pid:P, not '" << which
              << "'\n";
    return 2;
  }
  json answer = converse(t, request, nullptr);
  if (!t.json && answer.value("ok", false)) std::cout << answer.value("outcome", "") << "\n";
  return finish(t, answer);
}

}  // namespace clutchctl
