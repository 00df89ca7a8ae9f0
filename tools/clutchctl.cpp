// clutchctl: the operator's command line for clutch.
//
//   clutchctl cron 'EXPR' [--tz ZONE] [--from TIME] [--next N]
//       prints the next N fire times of a cron expression strictly after TIME, one ISO-8601 time
//       with its UTC offset a line; exits 1 with the parser's message on a bad expression.
//   clutchctl publish URL [BODY] [--count N]
//       publishes BODY (or, with --count, N messages "BODY-1".."BODY-N") to a queue URL such as
//       sqlite:/var/lib/app/queue.db.
#include <CLI/CLI.hpp>

#include <ctime>
#include <iostream>

#include "clutch/config.hpp"
#include "clutch/mq.hpp"
#include "clutch/version.hpp"
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

int publish_command(const std::string& url, const std::string& body, std::size_t count) {
  try {
    auto queue = clutch::open_message_source(url);
    if (count == 0) {
      queue->publish(body);
    } else {
      for (std::size_t i = 1; i <= count; ++i) queue->publish(body + "-" + std::to_string(i));
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

  CLI11_PARSE(cli, argc, argv);
  if (cron->parsed()) return cron_command(expression, zone, from, count);
  if (publish->parsed()) return publish_command(url, body, publish_count);
  return 2;
}
