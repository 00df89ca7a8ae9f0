#include "mq/inbox_handler.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <memory>

#include "mq/consumer.hpp"
#include "mq/postgres_inbox.hpp"
#include "mq/postgres_url.hpp"
#include "mq/sqlite_inbox.hpp"
#include "runtime/metrics_access.hpp"

namespace clutch::mq {
namespace {

constexpr std::string_view kSqliteScheme = "sqlite:";

// A worker's inbox, whichever database holds it.
class Inbox {
 public:
  virtual ~Inbox() = default;
  virtual InboxOutcome run_once(const InboxKey& key,
                                const std::function<void(Transaction&)>& work) = 0;
  virtual std::size_t prune(std::chrono::system_clock::time_point before) = 0;
};

class SqliteTransaction final : public Transaction {
 public:
  SqliteTransaction(sqlite3* db, const std::string& inbox) : db_(db), inbox_(inbox) {}
  sqlite3* sqlite() const override { return db_; }
  const std::string& inbox() const override { return inbox_; }

 private:
  sqlite3* db_;
  const std::string& inbox_;
};

class PostgresTransaction final : public Transaction {
 public:
  PostgresTransaction(PGconn* conn, const std::string& inbox) : conn_(conn), inbox_(inbox) {}
  pg_conn* postgres() const override { return conn_; }
  const std::string& inbox() const override { return inbox_; }

 private:
  PGconn* conn_;
  const std::string& inbox_;
};

template <typename Store, typename Tx, typename Handle>
class InboxOn final : public Inbox {
 public:
  InboxOn(const std::string& spec, std::string location) : spec_(spec), store_(location) {}
  InboxOutcome run_once(const InboxKey& key,
                        const std::function<void(Transaction&)>& work) override {
    return store_.run_once(key, [&](Handle* handle) {
      Tx tx(handle, spec_);
      work(tx);
    });
  }
  std::size_t prune(std::chrono::system_clock::time_point before) override {
    return store_.prune(before);
  }

 private:
  std::string spec_;
  Store store_;
};

std::unique_ptr<Inbox> open_inbox(const std::string& spec) {
  if (is_postgres_url(spec))
    return std::make_unique<InboxOn<PostgresInbox, PostgresTransaction, PGconn>>(spec, spec);
  return std::make_unique<InboxOn<SqliteInbox, SqliteTransaction, sqlite3>>(
      spec, spec.substr(kSqliteScheme.size()));
}

// Takes the agent's kInboxSourceHeader off `m` (it is the last header); "" if it is not there.
std::string take_source(QueueMessage& m) {
  if (m.headers.empty() || m.headers.back().first != kInboxSourceHeader) return {};
  std::string source = std::move(m.headers.back().second);
  m.headers.pop_back();
  return source;
}

}  // namespace

std::string inbox_declaration_error(const ConsumeOptions& options, bool exactly_once) {
  std::string who = "consume '" + options.name + "'";
  if (!exactly_once) {
    if (!options.inbox.empty())
      return who +
             ": inbox is for App::consume_exactly_once (this consumer's handler takes no "
             "transaction)";
    return {};
  }
  if (options.inbox.empty())
    return who + ": consume_exactly_once needs an inbox (e.g. .inbox = \"sqlite:app.db\")";
  bool sqlite =
      options.inbox.rfind(kSqliteScheme, 0) == 0 && options.inbox.size() > kSqliteScheme.size();
  if (!sqlite && !is_postgres_url(options.inbox))
    return who + ": inbox '" + options.inbox +
           "' is neither sqlite:PATH nor postgres://USER@HOST:PORT/DB";
  if (options.naive)
    return who + ": naive (every worker runs every message) cannot be exactly once";
  if (options.inbox_retention <= std::chrono::hours(0))
    return who + ": inbox_retention must be positive";
  return {};
}

void install_exactly_once_handler(Context& ctx, const ConsumerDeclaration& declaration) {
  const ConsumeOptions& options = declaration.options;
  // One connection per consumer per worker: the worker's loop runs one handler at a time, so
  // two of its consumers on one database never hold the write lock together.
  std::shared_ptr<Inbox> inbox = open_inbox(options.inbox);
  auto skipped = &detail::MetricsAccess::counter(
      ctx.metrics(), "clutch_mq_inbox_skipped_total",
      "Redelivered messages the inbox already had: acknowledged without running the handler.",
      {{"consumer", options.name}});

  auto prune = [inbox, options] {
    try {
      std::size_t n = inbox->prune(std::chrono::system_clock::now() - options.inbox_retention);
      if (n > 0)
        spdlog::info("mq {}: the inbox forgot {} message(s) done more than {} h ago", options.name,
                     n, options.inbox_retention.count());
    } catch (const std::exception& e) {
      spdlog::error("mq {}: pruning the inbox: {}", options.name, e.what());
    }
  };
  prune();
  ctx.set_interval(std::chrono::hours(1), prune);

  ExactlyOnceHandler run = declaration.exactly_once_handler;
  ctx.messenger().on(action_of(options), [&ctx, inbox, run, options, skipped](const Message& msg) {
    QueueMessage m = decode_delivery(msg.data());
    InboxKey key{take_source(m), options.name, m.id};
    if (key.source.empty()) {
      // Only an agent of this version sends it; failing leaves the message to a retry.
      throw std::runtime_error("a delivery without its queue's identity (from another version?)");
    }
    InboxOutcome outcome;
    try {
      outcome = inbox->run_once(key, [&](Transaction& tx) { run(ctx, m, tx); });
    } catch (const InboxUnavailable& e) {
      throw std::runtime_error(std::string(kInboxUnavailablePrefix) + e.what());
    }
    if (outcome == InboxOutcome::kAlreadyDone) {
      skipped->inc();
      spdlog::info(
          "mq {}: message {} is already done (the inbox has it): acknowledged, not run "
          "again",
          options.name, m.id);
    }
  });
}

}  // namespace clutch::mq
