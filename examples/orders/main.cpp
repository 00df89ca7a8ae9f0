// orders: the seed's story. POST /orders publishes orders to a queue; the agent consumes it and
// hands each order to exactly one worker, which appends it to a ledger file; GET /orders/stats
// counts the ledger: orders, the split per worker, and duplicates. ORDERS_NAIVE=1 reproduces the
// seed's bug (every worker handles every order) so the duplicates show.
//
// Environment: ORDERS_QUEUE (default sqlite:orders-queue.db), ORDERS_LEDGER (orders-ledger.txt),
// ORDERS_NAIVE (0).
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <clutch/app.hpp>
#include <clutch/http.hpp>
#include <clutch/mq.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

const std::string kQueue = env_or("ORDERS_QUEUE", "sqlite:orders-queue.db");
const std::string kLedger = env_or("ORDERS_LEDGER", "orders-ledger.txt");

// The order as one whitespace-free token, so that a ledger line is always "ORDER PID" whatever
// the body holds (a newline or a space in a body would split it): backslash escapes, "\e" for
// an empty body.
std::string ledger_token(const std::string& order) {
  if (order.empty()) return "\\e";
  std::string out;
  out.reserve(order.size());
  for (char c : order) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case ' ':
        out += "\\s";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// One line per handled order; O_APPEND keeps lines from several workers whole.
void append_to_ledger(const std::string& order, int pid) {
  static int fd = open(kLedger.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  std::string line = fmt::format("{} {}\n", ledger_token(order), pid);
  if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    throw std::runtime_error("cannot append to the ledger " + kLedger);
  }
}

std::string ledger_stats(clutch::MessageSource& queue) {
  std::ifstream in(kLedger);
  std::unordered_map<std::string, int> seen;
  std::map<std::string, int> per_worker;
  std::size_t lines = 0, duplicates = 0;
  for (std::string order, pid; in >> order >> pid;) {
    ++lines;
    ++per_worker[pid];
    if (++seen[order] > 1) ++duplicates;
  }
  std::string split;
  for (const auto& [pid, n] : per_worker)
    split += fmt::format("{}\"{}\":{}", split.empty() ? "" : ",", pid, n);
  return fmt::format(
      R"({{"orders":{},"handled":{},"duplicates":{},"per_worker":{{{}}},"queue_pending":{},"dead_letters":{}}})",
      seen.size(), lines, duplicates, split, queue.pending(), queue.dead_letters());
}

}  // namespace

int main(int argc, char** argv) {
  clutch::App app("orders");

  app.consume({.name = "orders", .url = kQueue, .naive = env_or("ORDERS_NAIVE", "0") == "1"},
              [](clutch::Context& ctx, const clutch::QueueMessage& m) {
                append_to_ledger(m.body, ctx.pid());
              });

  app.worker([](clutch::Context& ctx) {
    // Each worker publishes through its own producer: the queue's calls run off the worker's
    // loop, so a slow or hung broker delays the 202, never the other requests.
    auto producer = std::make_shared<clutch::Producer>(ctx, kQueue);
    std::shared_ptr<clutch::MessageSource> queue = clutch::open_message_source(kQueue);
    auto counter = std::make_shared<uint64_t>(0);
    clutch::http::Router router;
    router.post("/orders", [&ctx, producer, counter](clutch::http::Exchange ex) {
      std::string_view query = ex.request().query;
      std::size_t count = 1;
      if (auto at = query.find("count="); at != std::string_view::npos) {
        count = std::strtoul(std::string(query.substr(at + 6)).c_str(), nullptr, 10);
      }
      if (count == 0 || count > 100000) return ex.send(400, "count must be 1..100000\n");
      auto stamp = std::chrono::system_clock::now().time_since_epoch().count();
      std::vector<std::string> orders;
      for (std::size_t i = 0; i < count; ++i)
        orders.push_back(fmt::format("order-{}-{}-{}", ctx.pid(), stamp, ++*counter));
      producer->publish_many(std::move(orders), [ex, count](const std::string& error) mutable {
        if (!error.empty()) return ex.send(503, "not queued: " + error + "\n");
        ex.send_json(202, fmt::format(R"({{"published":{}}})", count));
      });
    });
    router.get("/orders/stats",
               [queue](clutch::http::Exchange ex) { ex.send_json(200, ledger_stats(*queue)); });
    clutch::http::serve(ctx, std::move(router));
  });

  return app.run(argc, argv);
}
