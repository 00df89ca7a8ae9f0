#include "mq/inbox_handler.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <memory>
#include <stdexcept>
#include <type_traits>

#include "mq/consumer.hpp"
#include "mq/outbox_relay.hpp"
#include "mq/postgres_inbox.hpp"
#include "mq/postgres_outbox.hpp"
#include "mq/postgres_url.hpp"
#include "mq/sqlite_inbox.hpp"
#include "mq/sqlite_outbox.hpp"
#include "runtime/metrics_access.hpp"

namespace clutch::mq {
namespace {

constexpr std::string_view kSqliteScheme = "sqlite:";

}  // namespace

// A worker's inbox, whichever database holds it, with its outbox.
class Inbox {
 public:
  virtual ~Inbox() = default;
  virtual InboxOutcome run_once(const InboxKey& key,
                                const std::function<void(Transaction&)>& work) = 0;
  // See ExactlyOnceRunner::run_batch.
  virtual std::size_t run_batch(std::span<ExactlyOnceRunner::Item> items,
                                std::chrono::steady_clock::duration budget) = 0;
  virtual std::size_t prune(std::chrono::system_clock::time_point before) = 0;
  virtual std::shared_ptr<OutboxStore> outbox() = 0;
  // What the last run staged in the outbox (to relay once it committed).
  virtual std::vector<OutboxEntry> take_staged() = 0;
};

namespace {

// The handler's transaction on either database: its connection, and publish through the outbox.
template <typename Handle>
class TransactionOn final : public Transaction {
 public:
  TransactionOn(Handle* handle, const std::string& inbox, OutboxStore& outbox,
                std::vector<OutboxEntry>& staged)
      : handle_(handle), inbox_(inbox), outbox_(outbox), staged_(staged) {}
  sqlite3* sqlite() const override {
    if constexpr (std::is_same_v<Handle, sqlite3>) return handle_;
    return nullptr;
  }
  pg_conn* postgres() const override {
    if constexpr (std::is_same_v<Handle, PGconn>) return handle_;
    return nullptr;
  }
  const std::string& inbox() const override { return inbox_; }
  void publish(const std::string& url, std::string_view body) override {
    if (std::string why = outbox_url_error(url); !why.empty()) throw std::invalid_argument(why);
    OutboxEntry e = outbox_.stage(url, body);
    if (e.id != 0) staged_.push_back(std::move(e));
  }

 private:
  Handle* handle_;
  const std::string& inbox_;
  OutboxStore& outbox_;
  std::vector<OutboxEntry>& staged_;
};

std::shared_ptr<OutboxStore> outbox_of(SqliteInbox& inbox, const std::string& path) {
  return std::make_shared<SqliteOutbox>(inbox.handle(), path);
}

std::shared_ptr<OutboxStore> outbox_of(PostgresInbox& inbox, const std::string&) {
  return std::make_shared<PostgresOutbox>([&inbox] { return inbox.handle(); }, inbox.conninfo());
}

template <typename Store, typename Handle>
class InboxOn final : public Inbox {
 public:
  InboxOn(const std::string& spec, const std::string& location)
      : spec_(spec), store_(location), outbox_(outbox_of(store_, location)) {}
  InboxOutcome run_once(const InboxKey& key,
                        const std::function<void(Transaction&)>& work) override {
    staged_.clear();
    InboxOutcome outcome = store_.run_once(key, [&](Handle* handle) {
      TransactionOn<Handle> tx(handle, spec_, *outbox_, staged_);
      work(tx);
    });
    if (outcome != InboxOutcome::kRan) staged_.clear();
    return outcome;
  }
  std::size_t run_batch(std::span<ExactlyOnceRunner::Item> items,
                        std::chrono::steady_clock::duration budget) override {
    staged_.clear();
    if constexpr (std::is_same_v<Store, SqliteInbox>) {
      std::vector<std::vector<OutboxEntry>> staged(items.size());
      std::vector<SqliteInbox::Item> own;
      own.reserve(items.size());
      for (std::size_t i = 0; i < items.size(); ++i) {
        own.push_back({items[i].key, [&, i](sqlite3* db) {
                         TransactionOn<sqlite3> tx(db, spec_, *outbox_, staged[i]);
                         items[i].work(tx);
                       }});
      }
      std::size_t n = store_.run_batch(own, budget);
      for (std::size_t i = 0; i < n; ++i) {
        items[i].outcome = own[i].outcome;
        items[i].error = own[i].error;
        if (own[i].outcome == InboxOutcome::kRan && !own[i].error)
          for (OutboxEntry& e : staged[i]) staged_.push_back(std::move(e));
      }
      return n;
    } else {
      // One at a time: a PostgreSQL commit per message (group commit is SQLite's for now).
      ExactlyOnceRunner::Item& item = items.front();
      try {
        item.outcome = run_once(item.key, item.work);
        item.error = nullptr;
      } catch (const InboxUnavailable&) {
        throw;  // nothing settled: the caller offers it again later
      } catch (...) {
        item.error = std::current_exception();
        staged_.clear();
      }
      return 1;
    }
  }
  std::size_t prune(std::chrono::system_clock::time_point before) override {
    return store_.prune(before);
  }
  std::shared_ptr<OutboxStore> outbox() override { return outbox_; }
  std::vector<OutboxEntry> take_staged() override { return std::exchange(staged_, {}); }

 private:
  std::string spec_;
  Store store_;
  std::shared_ptr<OutboxStore> outbox_;  // on store_'s connection
  std::vector<OutboxEntry> staged_;
};

std::unique_ptr<Inbox> open_inbox(const std::string& spec) {
  if (is_postgres_url(spec)) return std::make_unique<InboxOn<PostgresInbox, PGconn>>(spec, spec);
  return std::make_unique<InboxOn<SqliteInbox, sqlite3>>(spec, spec.substr(kSqliteScheme.size()));
}

// Takes the agent's kInboxSourceHeader off `m` (it is the last header); "" if it is not there.
std::string take_source(QueueMessage& m) {
  if (m.headers.empty() || m.headers.back().first != kInboxSourceHeader) return {};
  std::string source = std::move(m.headers.back().second);
  m.headers.pop_back();
  return source;
}

// The deliveries that arrived in one loop turn, run at its end through the inbox in as few
// transactions as its budget allows (group commit), each acknowledged only after its commit.
class CommitGroup : public std::enable_shared_from_this<CommitGroup> {
 public:
  CommitGroup(Context& ctx, std::shared_ptr<ExactlyOnceRunner> runner, ExactlyOnceHandler handler,
              std::string name, Counter* skipped, Counter* commits)
      : ctx_(ctx),
        runner_(std::move(runner)),
        handler_(std::move(handler)),
        name_(std::move(name)),
        skipped_(skipped),
        commits_(commits) {}

  void add(Deferred answer, InboxKey key, QueueMessage m) {
    waiting_.push_back({std::move(answer), std::move(m)});
    Waiting& w = waiting_.back();
    items_.push_back(
        {std::move(key), [this, &m = w.message](Transaction& tx) { handler_(ctx_, m, tx); }});
    schedule();
  }

 private:
  struct Waiting {
    Deferred answer;
    QueueMessage message;
  };

  void schedule() {
    if (posted_) return;
    posted_ = true;
    ctx_.post([self = shared_from_this()] { self->run(); });
  }

  // One transaction per turn at most: what its budget left waits for the next turn, so HTTP and
  // timers get the loop in between (a batch's handlers run without a turn between them).
  void run() {
    posted_ = false;
    if (items_.empty()) return;
    std::size_t settled = 0;
    std::exception_ptr unavailable;
    try {
      settled = runner_->run_batch(items_, kBudget);
      commits_->inc();
    } catch (...) {
      unavailable = std::current_exception();  // nothing ran: each one fails with it, unattempted
      settled = items_.size();
    }
    for (std::size_t i = 0; i < settled; ++i) answer(i, unavailable);
    waiting_.erase(waiting_.begin(), waiting_.begin() + static_cast<std::ptrdiff_t>(settled));
    items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(settled));
    if (!items_.empty()) schedule();
  }

  void answer(std::size_t i, const std::exception_ptr& unavailable) {
    ExactlyOnceRunner::Item& item = items_[i];
    Deferred& answer = waiting_[i].answer;
    std::exception_ptr error = unavailable ? unavailable : item.error;
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        answer.fail(e.what());
      } catch (...) {
        answer.fail("the handler threw something that is not a std::exception");
      }
      return;
    }
    if (item.outcome == InboxOutcome::kAlreadyDone) {
      skipped_->inc();
      spdlog::info(
          "mq {}: message {} is already done (the inbox has it): acknowledged, not run again",
          name_, waiting_[i].message.id);
    }
    answer.ack();
  }

  // How long one transaction keeps taking messages: long enough to share a commit among a
  // window's worth, short enough that the loop turns (and other workers get the write lock).
  static constexpr auto kBudget = std::chrono::milliseconds(20);

  Context& ctx_;
  std::shared_ptr<ExactlyOnceRunner> runner_;
  ExactlyOnceHandler handler_;
  std::string name_;
  Counter *skipped_, *commits_;
  // In arrival order, one for one; a deque, so that the messages the items' work refers to stay
  // where they are while more arrive.
  std::deque<Waiting> waiting_;
  std::vector<ExactlyOnceRunner::Item> items_;
  bool posted_ = false;
};

}  // namespace

std::string inbox_spec_error(const std::string& inbox) {
  if (inbox.empty()) return "exactly once needs an inbox (e.g. .inbox = \"sqlite:app.db\")";
  bool sqlite = inbox.rfind(kSqliteScheme, 0) == 0 && inbox.size() > kSqliteScheme.size();
  if (!sqlite && !is_postgres_url(inbox))
    return "inbox '" + inbox + "' is neither sqlite:PATH nor postgres://USER@HOST:PORT/DB";
  return {};
}

std::shared_ptr<ExactlyOnceRunner> ExactlyOnceRunner::open(Context& ctx, const std::string& spec,
                                                           const std::string& name,
                                                           std::chrono::hours retention) {
  std::shared_ptr<ExactlyOnceRunner> runner(new ExactlyOnceRunner());
  std::shared_ptr<Inbox> inbox = open_inbox(spec);
  runner->inbox_ = inbox;
  auto prune = [inbox, name, retention] {
    try {
      std::size_t n = inbox->prune(std::chrono::system_clock::now() - retention);
      if (n > 0)
        spdlog::info("{}: the inbox forgot {} record(s) made more than {} h ago", name, n,
                     retention.count());
    } catch (const std::exception& e) {
      spdlog::error("{}: pruning the inbox: {}", name, e.what());
    }
  };
  prune();
  ctx.set_interval(std::chrono::hours(1), prune);
  auto open_remover = [spec]() -> std::shared_ptr<OutboxStore> {
    std::shared_ptr<Inbox> own = open_inbox(spec);  // the relay thread's own connection
    return std::shared_ptr<OutboxStore>(own, own->outbox().get());
  };
  runner->relay_ = std::make_shared<OutboxRelay>(ctx, inbox->outbox(), open_remover, name);
  runner->relay_->start();
  return runner;
}

ExactlyOnceRunner::~ExactlyOnceRunner() = default;

namespace {

// An unreachable inbox becomes the worker's error that the agent recognises by its prefix: it
// holds the message for a later offer without counting an attempt.
template <typename Call>
auto as_worker_error(Call&& call) -> decltype(call()) {
  try {
    return call();
  } catch (const InboxUnavailable& e) {
    throw std::runtime_error(std::string(kInboxUnavailablePrefix) + e.what());
  }
}

}  // namespace

InboxOutcome ExactlyOnceRunner::run(const InboxKey& key,
                                    const std::function<void(Transaction&)>& work) {
  InboxOutcome outcome = as_worker_error([&] { return inbox_->run_once(key, work); });
  if (outcome == InboxOutcome::kRan) relay_->relay(inbox_->take_staged());
  return outcome;
}

std::size_t ExactlyOnceRunner::run_batch(std::span<Item> items,
                                         std::chrono::steady_clock::duration budget) {
  std::size_t n = as_worker_error([&] { return inbox_->run_batch(items, budget); });
  relay_->relay(inbox_->take_staged());
  return n;
}

std::string inbox_declaration_error(const ConsumeOptions& options, bool exactly_once) {
  std::string who = "consume '" + options.name + "'";
  if (!exactly_once) {
    if (!options.inbox.empty())
      return who +
             ": inbox is for App::consume_exactly_once (this consumer's handler takes no "
             "transaction)";
    return {};
  }
  if (std::string why = inbox_spec_error(options.inbox); !why.empty()) return who + ": " + why;
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
  auto runner =
      ExactlyOnceRunner::open(ctx, options.inbox, "mq " + options.name, options.inbox_retention);
  auto skipped = &detail::MetricsAccess::counter(
      ctx.metrics(), "clutch_mq_inbox_skipped_total",
      "Redelivered messages the inbox already had: acknowledged without running the handler.",
      {{"consumer", options.name}});
  auto commits = &detail::MetricsAccess::counter(
      ctx.metrics(), "clutch_mq_inbox_commits_total",
      "Inbox transactions committed (several messages share one when they arrive together).",
      {{"consumer", options.name}});
  auto group = std::make_shared<CommitGroup>(ctx, runner, declaration.exactly_once_handler,
                                             options.name, skipped, commits);
  ctx.messenger().on(action_of(options), [group, name = options.name](const Message& msg) {
    QueueMessage m = decode_delivery(msg.data());
    InboxKey key{take_source(m), name, m.id};
    if (key.source.empty()) {
      // Only an agent of this version sends it; failing leaves the message to a retry.
      throw std::runtime_error("a delivery without its queue's identity (from another version?)");
    }
    // Relayed from an outbox: the relay may have published it twice (a crash between its
    // publish and its removal); its token is the same both times, its queue id is not.
    if (const std::string* token = m.header(kOutboxIdHeader))
      key = InboxKey{"outbox", name, *token};
    group->add(msg.defer(), std::move(key), std::move(m));
  });
}

}  // namespace clutch::mq
