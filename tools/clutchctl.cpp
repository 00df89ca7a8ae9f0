// clutchctl: the operator's command line for clutch.
//
//   clutchctl cron 'EXPR' [--tz ZONE] [--from TIME] [--next N]
//       prints the next N fire times of a cron expression strictly after TIME, one ISO-8601 time
//       with its UTC offset a line; exits 1 with the parser's message on a bad expression.
//   clutchctl publish URL [BODY] [--count N] [--header NAME=VALUE]...
//       publishes BODY (or, with --count, N messages "BODY-1".."BODY-N") to a queue URL such as
//       sqlite:/var/lib/app/queue.db, with headers where the queue carries them (Redis, AMQP).
//   clutchctl status [--watch] | top | reload | upgrade | stop [--now] [--no-wait] | scale N|+N|-N
//   | restart SLOT clutchctl jobs | jobs run NAME clutchctl queue [NAME] | queue dead [NAME] |
//   queue requeue|purge NAME (ID... | --all) clutchctl logs [-f] [--role R] [-n N]
//       (each with [--app NAME | --socket PATH] [--json]) talk to a running cluster through its
//       control socket (docs/OPERATIONS.md).
#include <CLI/CLI.hpp>

#include <ctime>
#include <iostream>

#include "clutch/config.hpp"
#include "clutch/mq.hpp"
#include "clutch/version.hpp"
#include "control_client.hpp"
#include "schedule/cron.hpp"

namespace {

int cron_command(const std::string& expression, const std::string& zone_name,
                 const std::string& from, int count) {
  using namespace clutch::schedule;
  try {
    TimeZone zone(zone_name);
    CronExpression cron = parse_cron(expression);
    std::time_t at = from.empty() ? std::time(nullptr) : parse_iso8601(from, zone);
    for (int i = 0; i < count; ++i) {
      auto next = next_fire(cron, zone, at);
      if (!next) {
        if (i == 0) {
          std::cerr << "clutchctl: cron '" << expression << "' never fires in the next 10 years\n";
          return 1;
        }
        break;
      }
      std::cout << format_iso8601(*next, zone) << "\n";
      at = *next;
    }
    return 0;
  } catch (const CronError& e) {
    std::cerr << "clutchctl: " << e.what() << "\n";
    return 1;
  }
}

int publish_command(const std::string& url, const std::string& body, std::size_t count,
                    const std::vector<std::string>& header_args) {
  try {
    clutch::QueueHeaders headers;
    for (const std::string& h : header_args) {
      auto eq = h.find('=');
      if (eq == std::string::npos || eq == 0) {
        std::cerr << "clutchctl: --header takes NAME=VALUE, not '" << h << "'\n";
        return 2;
      }
      headers.emplace_back(h.substr(0, eq), h.substr(eq + 1));
    }
    auto queue = clutch::open_message_source(url);
    if (count == 0) {
      queue->publish_with_headers(body, headers);
    } else if (!headers.empty()) {
      for (std::size_t i = 1; i <= count; ++i)
        queue->publish_with_headers(body + "-" + std::to_string(i), headers);
    } else {
      // In batches: a broker with publisher confirms (AMQP) pipelines each batch.
      std::vector<std::string> batch;
      for (std::size_t i = 1; i <= count; ++i) {
        batch.push_back(body + "-" + std::to_string(i));
        if (batch.size() == 1000 || i == count) {
          queue->publish_many(batch);
          batch.clear();
        }
      }
    }
    std::cout << "published " << (count == 0 ? 1 : count) << " message(s) to " << url << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "clutchctl: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"clutchctl: operate clutch clusters"};
  cli.require_subcommand(1);
  cli.set_version_flag("-v,--version", std::string("clutchctl ") + clutch::kVersion);

  std::string expression, zone, from;
  int count = 5;
  auto* cron = cli.add_subcommand("cron", "print the next fire times of a cron expression");
  cron->add_option("expression", expression, "5 fields, or 6 with seconds first")->required();
  cron->add_option("--tz", zone, "IANA time zone (default: local)");
  cron->add_option("--from", from, "ISO-8601 start time, exclusive (default: now)");
  cron->add_option("--next", count, "how many fire times")->check(CLI::Range(1, 10000));

  std::string url, body = "message";
  std::size_t publish_count = 0;
  auto* publish = cli.add_subcommand("publish", "publish messages to a queue");
  publish->add_option("url", url, "queue URL, e.g. sqlite:queue.db")->required();
  publish->add_option("body", body, "message body (with --count: the prefix of each body)");
  publish->add_option("--count", publish_count, "publish N numbered messages");
  std::vector<std::string> publish_headers;
  publish->add_option("--header", publish_headers,
                      "NAME=VALUE, a header (Redis: an entry field; AMQP: a header, or amqp.* "
                      "property); repeatable");

  clutchctl::Target target;
  auto add_target = [&target](CLI::App* command) {
    command->add_option("--app", target.app, "the cluster's app name (its default socket)");
    command->add_option("--socket", target.socket, "the cluster's control socket path");
    command->add_flag("--json", target.json, "print the answer as JSON");
  };
  bool watch = false, now = false;
  std::string how_many;
  auto* status = cli.add_subcommand("status", "every process of a running cluster");
  status->add_flag("--watch", watch, "refresh every second, as top does");
  auto* top = cli.add_subcommand("top", "status --watch");
  auto* reload = cli.add_subcommand("reload", "rolling reload; waits for its outcome");
  auto* upgrade = cli.add_subcommand(
      "upgrade", "replace the master itself with the binary on disk, keeping the sockets");
  auto* stop = cli.add_subcommand("stop", "graceful stop (--now: at once)");
  stop->add_flag("--now", now, "kill every process at once");
  bool no_wait = false;
  stop->add_flag("--no-wait", no_wait, "return once the stop has begun, not when the master exits");
  auto* scale = cli.add_subcommand("scale", "set the number of workers: N, +N or -N");
  scale->add_option("workers", how_many, "N, +N or -N")->required()->allow_extra_args(false);
  std::string which;
  auto* restart = cli.add_subcommand(
      "restart", "replace one process: a worker slot (its successor ready first), agent, or pid:P");
  restart->add_option("which", which, "worker slot number, 'agent' or pid:P")->required();
  auto* jobs = cli.add_subcommand("jobs", "every scheduled job: next and last run, results");
  std::string job_name;
  int job_timeout = 600;
  auto* jobs_run = jobs->add_subcommand("run", "run a job now (one tick, its usual worker rule)");
  jobs_run->add_option("name", job_name, "the job's name")->required();
  jobs_run->add_option("--timeout", job_timeout, "seconds to wait for the run to end")
      ->check(CLI::Range(1, 86400));
  std::string queue_what, queue_name;
  std::vector<std::string> queue_ids;
  bool queue_all = false;
  std::size_t queue_limit = 100;
  auto* queue = cli.add_subcommand("queue", "queue consumers: pending, in flight, dead letters");
  queue->add_option("consumer", queue_name, "a consumer's name (default: the only one)");
  auto* queue_dead = queue->add_subcommand("dead", "list a consumer's dead letters");
  queue_dead->add_option("consumer", queue_name, "the consumer's name");
  queue_dead->add_option("--limit", queue_limit, "how many, oldest first")
      ->check(CLI::Range(1, 10000));
  auto* queue_requeue = queue->add_subcommand("requeue", "move dead letters back to the queue");
  auto* queue_purge = queue->add_subcommand("purge", "delete dead letters for good");
  for (auto* sub : {queue_requeue, queue_purge}) {
    sub->add_option("consumer", queue_name, "the consumer's name")->required();
    sub->add_option("ids", queue_ids, "dead letter ids (from queue dead)");
    sub->add_flag("--all", queue_all, "every dead letter of the consumer");
  }
  std::string log_role;
  bool log_follow = false;
  std::size_t log_lines = 50;
  auto* logs = cli.add_subcommand("logs", "the cluster's log files (log_dir), merged by time");
  logs->add_flag("-f,--follow", log_follow, "keep printing new lines");
  logs->add_option("--role", log_role, "master, agent or worker");
  logs->add_option("-n,--lines", log_lines, "how many past lines first");
  for (auto* command : {status, top, reload, upgrade, stop, scale, restart, jobs, jobs_run, queue,
                        queue_dead, queue_requeue, queue_purge, logs}) {
    add_target(command);
  }

  CLI11_PARSE(cli, argc, argv);
  if (status->parsed()) return clutchctl::status_command(target, watch);
  if (top->parsed()) return clutchctl::status_command(target, true);
  if (reload->parsed()) return clutchctl::reload_command(target);
  if (upgrade->parsed()) return clutchctl::upgrade_command(target);
  if (stop->parsed()) return clutchctl::stop_command(target, now, !no_wait);
  if (scale->parsed()) return clutchctl::scale_command(target, how_many);
  if (restart->parsed()) return clutchctl::restart_command(target, which);
  if (jobs_run->parsed()) return clutchctl::job_run_command(target, job_name, job_timeout);
  if (jobs->parsed()) return clutchctl::jobs_command(target);
  if (queue->parsed()) {
    std::string what = queue_dead->parsed()      ? "dead"
                       : queue_requeue->parsed() ? "requeue"
                       : queue_purge->parsed()   ? "purge"
                                                 : "";
    return clutchctl::queue_command(target, what, queue_name, queue_ids, queue_all, queue_limit);
  }
  if (logs->parsed()) return clutchctl::logs_command(target, log_role, log_follow, log_lines);
  if (cron->parsed()) return cron_command(expression, zone, from, count);
  if (publish->parsed()) return publish_command(url, body, publish_count, publish_headers);
  return 2;
}
