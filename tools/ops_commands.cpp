// clutchctl jobs, jobs run, queue (dead, requeue, purge) and logs: schedules and queues are the
// agent's, reached through the master; logs are read from the cluster's log_dir.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <thread>

#include "control_client.hpp"

namespace clutchctl {
namespace {

using nlohmann::json;

std::string or_dash(const std::string& s) {
  return s.empty() ? "-" : s;
}

void print_jobs(const json& jobs) {
  if (jobs.empty()) {
    std::cout << "no scheduled jobs\n";
    return;
  }
  std::cout << fmt::format("{:<20} {:<16} {:<7} {:<26} {:<26} {:<8} {:>6} {:>6} {:>6} {:>7}  {}\n",
                           "JOB", "SCHEDULE", "TYPE", "NEXT RUN", "LAST RUN", "RUNNING", "OK",
                           "FAILED", "SKIP", "LAST MS", "LAST RESULT");
  for (const auto& j : jobs) {
    long long last_ms = j.value("last_duration_ms", -1LL);
    std::cout << fmt::format(
        "{:<20} {:<16} {:<7} {:<26} {:<26} {:<8} {:>6} {:>6} {:>6} {:>7}  {}\n",
        j.value("name", ""), j.value("schedule", ""), j.value("type", ""),
        j.value("disabled", false) ? std::string("disabled") : or_dash(j.value("next_fire", "")),
        or_dash(j.value("last_run", "")), j.value("running", false) ? "yes" : "no",
        j.value("runs_ok", 0), j.value("runs_failed", 0), j.value("skipped", 0),
        last_ms < 0 ? std::string("-") : std::to_string(last_ms),
        or_dash(j.value("last_result", "")));
  }
}

void print_queues(const json& queues) {
  if (queues.empty()) {
    std::cout << "no queue consumers\n";
    return;
  }
  std::cout << fmt::format("{:<16} {:>9} {:>9} {:>10} {:>7} {:>10} {:>8} {:>8}  {}\n", "CONSUMER",
                           "PENDING", "IN FLIGHT", "OLDEST", "DEAD", "HANDLED", "FAILED", "RATE/S",
                           "URL");
  for (const auto& q : queues) {
    long long age = q.value("oldest_age_ms", -1LL);
    std::cout << fmt::format("{:<16} {:>9} {:>9} {:>10} {:>7} {:>10} {:>8} {:>8.1f}  {}\n",
                             q.value("name", ""), q.value("pending", 0), q.value("in_flight", 0),
                             age < 0 ? std::string("-") : seconds(static_cast<double>(age)),
                             q.value("dead_letters", 0),
                             static_cast<uint64_t>(q.value("handled", 0.0)),
                             static_cast<uint64_t>(q.value("failed", 0.0)),
                             q.value("rate_per_s", 0.0), q.value("url", ""));
  }
}

std::string local_time(long long ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  return text;
}

void print_dead(const json& dead) {
  if (dead.empty()) {
    std::cout << "no dead letters\n";
    return;
  }
  // ID is what requeue and purge take; MESSAGE ID, when it differs (Redis: the dead stream
  // has ids of its own), is the id the agent logged when the message failed.
  bool both = std::any_of(dead.begin(), dead.end(), [](const json& d) {
    std::string original = d.value("message_id", "");
    return !original.empty() && original != d.value("id", "");
  });
  std::cout << fmt::format("{:<22} {}{:<20} {:>8}  {:<40}  {}\n", "ID",
                           both ? fmt::format("{:<22} ", "MESSAGE ID") : "", "FAILED AT",
                           "ATTEMPTS", "ERROR", "BODY");
  for (const auto& d : dead) {
    std::string body = d.value("body", "");
    if (body.size() > 60) body = body.substr(0, 57) + "...";
    std::replace(body.begin(), body.end(), '\n', ' ');
    std::string headers;
    if (d.contains("headers"))
      for (const auto& h : d["headers"])
        headers += fmt::format(" {}={}", h[0].get<std::string>(), h[1].get<std::string>());
    if (!headers.empty()) body += "  [" + headers.substr(1) + "]";
    std::cout << fmt::format("{:<22} {}{:<20} {:>8}  {:<40}  {}\n", d.value("id", ""),
                             both ? fmt::format("{:<22} ", d.value("message_id", "")) : "",
                             local_time(d.value("failed_at_ms", 0LL)), d.value("attempts", 0),
                             d.value("error", ""), body);
  }
}

}  // namespace

int jobs_command(const Target& t) {
  json answer = converse(t, {{"v", 1}, {"cmd", "jobs"}}, nullptr);
  if (!t.json && answer.value("ok", false)) print_jobs(answer["jobs"]);
  return finish(t, answer);
}

int job_run_command(const Target& t, const std::string& name, int timeout_s) {
  json request = {{"v", 1}, {"cmd", "job-run"}, {"name", name}};
  request["timeout_ms"] = static_cast<uint64_t>(timeout_s) * 1000;
  json answer = converse(t, request, nullptr);
  if (!t.json && answer.value("ok", false)) {
    if (answer.contains("outcome"))
      std::cout << fmt::format("job {}: tick {} {}\n", name, answer.value("tick", 0),
                               answer.value("outcome", ""));
    else
      std::cout << fmt::format("job {}: tick {} ok on worker {} in {} ms\n", name,
                               answer.value("tick", 0), answer.value("worker", 0),
                               answer.value("duration_ms", 0));
  }
  return finish(t, answer);
}

int queue_command(const Target& t, const std::string& what, const std::string& name,
                  const std::vector<std::string>& ids, bool all, std::size_t limit) {
  json request = {{"v", 1}, {"name", name}};
  if (what.empty()) {
    request["cmd"] = "queues";
  } else if (what == "dead") {
    request["cmd"] = "queue-dead";
    request["limit"] = limit;
  } else if (what == "requeue" || what == "purge") {
    if (ids.empty() == !all) {
      std::cerr << "clutchctl: queue " << what << " takes dead letter ids, or --all\n";
      return 2;
    }
    request["cmd"] = "queue-" + what;
    request["ids"] = ids;
    request["all"] = all;
  } else {
    std::cerr << "clutchctl: queue takes dead, requeue or purge, not '" << what << "'\n";
    return 2;
  }
  json answer = converse(t, request, nullptr);
  if (!t.json && answer.value("ok", false)) {
    if (what.empty()) print_queues(answer["queues"]);
    if (what == "dead") print_dead(answer["dead"]);
    if (what == "requeue")
      std::cout << fmt::format("{}: {} dead letter(s) back in the queue\n",
                               answer.value("name", ""), answer.value("requeued", 0));
    if (what == "purge")
      std::cout << fmt::format("{}: {} dead letter(s) deleted\n", answer.value("name", ""),
                               answer.value("purged", 0));
  }
  if ((what == "requeue" || what == "purge") && !all && answer.value("ok", false)) {
    // Ids that matched nothing are a mistake to report (a typo, a letter already requeued).
    std::size_t done = answer.value(what == "requeue" ? "requeued" : "purged", std::size_t{0});
    if (done < ids.size()) {
      if (t.json) std::cout << answer.dump() << "\n";
      std::cerr << fmt::format("clutchctl: {} of the {} id(s) given are not dead letters of {}\n",
                               ids.size() - done, ids.size(), answer.value("name", name));
      return 1;
    }
  }
  return finish(t, answer);
}

namespace {

// One log file being read: where we are in it, and which file it is (for logrotate).
struct LogFile {
  std::string path;
  std::ifstream in;
  ino_t inode = 0;
  std::string partial;  // a line not yet ended by '\n'
};

// The sort key of a line: its time ("2026-11-25T16:40:58.123" in text, "time" in JSON), so the
// files' lines interleave as they happened.
std::string time_of(const std::string& line) {
  if (line.starts_with("{\"time\":\"")) return line.substr(9, 23);
  return line.substr(0, 23);
}

bool open_log(LogFile& f) {
  struct stat st {};
  if (stat(f.path.c_str(), &st) != 0) return false;
  f.in = std::ifstream(f.path);
  f.inode = st.st_ino;
  f.partial.clear();
  return f.in.good();
}

void read_new_from(LogFile& f, std::vector<std::string>& out) {
  char buffer[65536];
  for (;;) {
    f.in.read(buffer, sizeof buffer);
    std::streamsize n = f.in.gcount();
    if (n <= 0) break;
    f.partial.append(buffer, static_cast<std::size_t>(n));
  }
  f.in.clear();  // at the end: keep the position, read on next time
  std::size_t start = 0;
  for (std::size_t eol; (eol = f.partial.find('\n', start)) != std::string::npos; start = eol + 1)
    out.push_back(f.partial.substr(start, eol - start));
  f.partial.erase(0, start);
}

// New complete lines of `f`; reopens a rotated or truncated file from its start.
void read_new(LogFile& f, std::vector<std::string>& out) {
  struct stat st {};
  if (stat(f.path.c_str(), &st) == 0) {
    bool rotated = st.st_ino != f.inode;
    bool truncated =
        f.in.is_open() && f.in.good() &&
        static_cast<std::streamoff>(st.st_size) < static_cast<std::streamoff>(f.in.tellg());
    if (!f.in.is_open() || rotated || truncated) {
      // Whatever the old file gained before the rename is read first.
      if (f.in.is_open() && rotated) read_new_from(f, out);
      if (!open_log(f)) return;
    }
  }
  read_new_from(f, out);
}

}  // namespace

int logs_command(const Target& t, const std::string& role, bool follow, std::size_t lines) {
  json status = converse(t, {{"v", 1}, {"cmd", "status"}}, nullptr);
  if (!status.value("ok", false)) return finish(t, status);
  std::string dir = status.value("log_dir", "");
  if (dir.empty()) {
    std::cerr << "clutchctl: this cluster logs to stderr (under systemd: journalctl -u UNIT -f); "
                 "set log_dir for log files clutchctl can read\n";
    return 1;
  }
  std::string app = status.value("app", "");
  std::vector<std::string> roles = role.empty()
                                       ? std::vector<std::string>{"master", "agent", "worker"}
                                       : std::vector<std::string>{role};
  std::vector<LogFile> files;
  for (const auto& r : roles) {
    if (r != "master" && r != "agent" && r != "worker") {
      std::cerr << "clutchctl: --role takes master, agent or worker, not '" << r << "'\n";
      return 2;
    }
    files.push_back(LogFile{fmt::format("{}/{}.{}.log", dir, app, r), {}, 0, {}});
  }
  std::vector<std::string> batch;
  for (auto& f : files) {
    if (open_log(f)) read_new_from(f, batch);
  }
  auto emit = [](std::vector<std::string>& batch, std::size_t keep) {
    std::stable_sort(batch.begin(), batch.end(), [](const std::string& a, const std::string& b) {
      return time_of(a) < time_of(b);
    });
    std::size_t from = batch.size() > keep ? batch.size() - keep : 0;
    for (std::size_t i = from; i < batch.size(); ++i) std::cout << batch[i] << "\n";
    std::cout.flush();
    batch.clear();
  };
  emit(batch, lines);
  while (follow) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    for (auto& f : files) read_new(f, batch);
    emit(batch, batch.size());
    if (!std::cout.good()) return 0;  // the reader went away (a closed pipe)
  }
  return 0;
}

}  // namespace clutchctl
