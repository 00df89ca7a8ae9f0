// The SQLite inbox (issue 23's first step): the handler's writes and its message's key commit
// together or not at all, a recorded key never runs again, a process that dies at any point
// leaves either nothing or both. The app's table here has no unique constraint on purpose: one
// would hide a duplicate instead of showing it.
#include "mq/sqlite_inbox.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <span>
#include <stdexcept>
#include <thread>
#include <vector>

#include "clutch/config.hpp"
#include "sqlite_test_file.hpp"

namespace clutch::mq {
namespace {

class SqliteInboxTest : public testing::SqliteFileTest {
 protected:
  static void write_effect(sqlite3* db, const std::string& what) {
    std::string sql = "INSERT INTO effects (what) VALUES ('" + what + "')";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
  }
  int effects(const std::string& what) {
    sqlite3* db = nullptr;
    sqlite3_open(path_.c_str(), &db);
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM effects WHERE what = ?", -1, &s, nullptr);
    sqlite3_bind_text(s, 1, what.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_step(s);
    int n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
  }
  void create_effects_table() {
    SqliteInbox inbox(path_);
    ASSERT_EQ(
        sqlite3_exec(inbox.handle(), "CREATE TABLE effects (what TEXT)", nullptr, nullptr, nullptr),
        SQLITE_OK);
  }
  // Runs `body` in a child process and returns its exit status (a crash stands in for a kill).
  static int in_child(const std::function<void()>& body) {
    pid_t pid = fork();
    if (pid == 0) {
      body();
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
  }
};

TEST_F(SqliteInboxTest, ARecordedKeyIsNotRunAgainAndOtherKeysAre) {
  create_effects_table();
  SqliteInbox inbox(path_);
  InboxKey key{"sqlite", "orders", "7"};
  int calls = 0;
  auto work = [&](sqlite3* db) {
    ++calls;
    write_effect(db, "order 7");
  };
  EXPECT_EQ(inbox.run_once(key, work), SqliteInbox::Outcome::kRan);
  EXPECT_EQ(inbox.run_once(key, work), SqliteInbox::Outcome::kAlreadyDone);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(effects("order 7"), 1);
  EXPECT_TRUE(inbox.recorded(key));
  // The same id from another queue or source is another message.
  EXPECT_EQ(inbox.run_once({"sqlite", "refunds", "7"}, work), SqliteInbox::Outcome::kRan);
  EXPECT_EQ(inbox.run_once({"redis", "orders", "7"}, work), SqliteInbox::Outcome::kRan);
  EXPECT_EQ(calls, 3);
}

TEST_F(SqliteInboxTest, AHandlerThatThrowsLeavesNoWriteAndNoKeySoTheRetryRunsInFull) {
  create_effects_table();
  SqliteInbox inbox(path_);
  InboxKey key{"sqlite", "orders", "8"};
  EXPECT_THROW(inbox.run_once(key,
                              [&](sqlite3* db) {
                                write_effect(db, "order 8");
                                throw std::runtime_error("payment service down");
                              }),
               std::runtime_error);
  EXPECT_EQ(effects("order 8"), 0);
  EXPECT_FALSE(inbox.recorded(key));
  EXPECT_EQ(inbox.run_once(key, [&](sqlite3* db) { write_effect(db, "order 8"); }),
            SqliteInbox::Outcome::kRan);
  EXPECT_EQ(effects("order 8"), 1);
}

TEST_F(SqliteInboxTest, AHandlerThatEndsTheTransactionItselfIsAFailureAndItsKeyWentWithItsWrites) {
  create_effects_table();
  SqliteInbox inbox(path_);
  InboxKey key{"sqlite", "orders", "9"};
  try {
    inbox.run_once(key, [&](sqlite3* db) {
      write_effect(db, "order 9");
      sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    });
    FAIL() << "a handler's own COMMIT must fail the run";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("ended the inbox's transaction"), std::string::npos);
  }
  // The key is inserted first: the handler's COMMIT took it with its writes, so the retry of the
  // failed run finds it and does not write them again.
  EXPECT_TRUE(inbox.recorded(key));
  EXPECT_EQ(inbox.run_once(key, [](sqlite3*) {}), SqliteInbox::Outcome::kAlreadyDone);
}

TEST_F(SqliteInboxTest, AProcessKilledBeforeTheCommitLeftNothingAndOneKilledAfterItLeftBoth) {
  create_effects_table();
  InboxKey key{"redis", "orders", "1700000000000-0"};
  // Killed between its write and the commit: rolled back by SQLite's recovery.
  int status = in_child([&] {
    SqliteInbox inbox(path_);
    inbox.run_once(key, [&](sqlite3* db) {
      write_effect(db, "order 9");
      _exit(9);  // as SIGKILL: no rollback, no destructor
    });
  });
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 9);
  EXPECT_EQ(effects("order 9"), 0);
  // Killed after the commit, before the ack: the redelivery finds the key.
  status = in_child([&] {
    SqliteInbox inbox(path_);
    inbox.run_once(key, [&](sqlite3* db) { write_effect(db, "order 9"); });
    _exit(0);  // the ack never sent
  });
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  SqliteInbox redelivered(path_);
  int calls = 0;
  EXPECT_EQ(redelivered.run_once(key, [&](sqlite3*) { ++calls; }),
            SqliteInbox::Outcome::kAlreadyDone);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(effects("order 9"), 1);
}

TEST_F(SqliteInboxTest, TwoConnectionsGivenTheSameMessageAtOnceRunItOnce) {
  create_effects_table();
  // Four workers' connections, each handed the same 50 messages (a redelivery racing the run).
  std::atomic<int> ran{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      SqliteInbox inbox(path_, std::chrono::seconds(30));
      for (int m = 0; m < 50; ++m) {
        std::string id = std::to_string(m);
        if (inbox.run_once({"sqlite", "orders", id}, [&](sqlite3* db) {
              write_effect(db, "race " + id);
            }) == SqliteInbox::Outcome::kRan)
          ++ran;
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(ran.load(), 50);
  for (int m = 0; m < 50; ++m) EXPECT_EQ(effects("race " + std::to_string(m)), 1) << m;
}

// Group commit: several messages in one transaction, each in its own savepoint.
class SqliteInboxBatchTest : public SqliteInboxTest {
 protected:
  using Item = SqliteInbox::Item;
  static Item writing(const std::string& id) {
    return Item({"sqlite", "orders", id}, [id](sqlite3* db) { write_effect(db, "order " + id); });
  }
  static constexpr auto kLong = std::chrono::seconds(10);
};

TEST_F(SqliteInboxBatchTest, OneThatThrowsRollsBackAloneAndTheOthersCommitTogether) {
  create_effects_table();
  SqliteInbox inbox(path_);
  std::vector<Item> items{writing("1"),
                          Item({"sqlite", "orders", "2"},
                               [](sqlite3* db) {
                                 write_effect(db, "order 2");
                                 throw std::runtime_error("card declined");
                               }),
                          writing("3")};
  ASSERT_EQ(inbox.run_batch(items, kLong), 3u);
  EXPECT_FALSE(items[0].error);
  ASSERT_TRUE(items[1].error);
  EXPECT_FALSE(items[2].error);
  EXPECT_EQ(effects("order 1"), 1);
  EXPECT_EQ(effects("order 2"), 0);  // its write went with its savepoint
  EXPECT_EQ(effects("order 3"), 1);
  EXPECT_TRUE(inbox.recorded({"sqlite", "orders", "1"}));
  EXPECT_FALSE(inbox.recorded({"sqlite", "orders", "2"}));  // its retry runs it
  EXPECT_TRUE(inbox.recorded({"sqlite", "orders", "3"}));
  // Handed again (a redelivery): the done ones are not run, the failed one is.
  std::vector<Item> again{writing("1"), writing("2"), writing("3")};
  ASSERT_EQ(inbox.run_batch(again, kLong), 3u);
  EXPECT_EQ(again[0].outcome, SqliteInbox::Outcome::kAlreadyDone);
  EXPECT_EQ(again[1].outcome, SqliteInbox::Outcome::kRan);
  EXPECT_EQ(again[2].outcome, SqliteInbox::Outcome::kAlreadyDone);
  for (const char* id : {"order 1", "order 2", "order 3"}) EXPECT_EQ(effects(id), 1) << id;
}

TEST_F(SqliteInboxBatchTest, AKeyRepeatedInOneBatchWaitsForTheFirstOnesCommit) {
  create_effects_table();
  SqliteInbox inbox(path_);
  std::vector<Item> items{writing("5"), writing("6"), writing("5")};
  ASSERT_EQ(inbox.run_batch(items, kLong), 2u);  // stops before the repeat
  std::span<Item> rest(items.begin() + 2, items.end());
  ASSERT_EQ(inbox.run_batch(rest, kLong), 1u);
  EXPECT_EQ(items[2].outcome, SqliteInbox::Outcome::kAlreadyDone);
  EXPECT_EQ(effects("order 5"), 1);
}

TEST_F(SqliteInboxBatchTest, AHandlerThatEndsTheTransactionFailsAndTheEarlierOnesKeepTheirFate) {
  create_effects_table();
  SqliteInbox inbox(path_);
  auto ending_with = [](const char* statement) {
    return Item({"sqlite", "orders", statement}, [statement](sqlite3* db) {
      sqlite3_exec(db, statement, nullptr, nullptr, nullptr);
    });
  };
  // A ROLLBACK takes the earlier message's writes and key with it: that one fails too.
  std::vector<Item> items{writing("7"), ending_with("ROLLBACK"), writing("8")};
  ASSERT_EQ(inbox.run_batch(items, kLong), 2u);
  EXPECT_TRUE(items[0].error);
  EXPECT_TRUE(items[1].error);
  EXPECT_EQ(effects("order 7"), 0);
  EXPECT_FALSE(inbox.recorded({"sqlite", "orders", "7"}));
  // A COMMIT made the earlier one's writes and key durable: that one is done.
  std::vector<Item> more{writing("9"), ending_with("COMMIT")};
  ASSERT_EQ(inbox.run_batch(more, kLong), 2u);
  EXPECT_FALSE(more[0].error);
  EXPECT_TRUE(more[1].error);
  EXPECT_EQ(effects("order 9"), 1);
  EXPECT_TRUE(inbox.recorded({"sqlite", "orders", "9"}));
}

TEST_F(SqliteInboxBatchTest, ABudgetThatHasPassedStillSettlesOneAtATime) {
  create_effects_table();
  SqliteInbox inbox(path_);
  std::vector<Item> items{writing("10"), writing("11")};
  ASSERT_EQ(inbox.run_batch(items, std::chrono::seconds(0)), 1u);
  std::span<Item> rest(items.begin() + 1, items.end());
  ASSERT_EQ(inbox.run_batch(rest, std::chrono::seconds(0)), 1u);
  EXPECT_EQ(effects("order 10"), 1);
  EXPECT_EQ(effects("order 11"), 1);
}

TEST_F(SqliteInboxTest, PruneForgetsOnlyKeysOlderThanTheRetention) {
  SqliteInbox inbox(path_);
  auto nothing = [](sqlite3*) {};
  inbox.run_once({"sqlite", "q", "old"}, nothing);
  ASSERT_EQ(sqlite3_exec(inbox.handle(), "UPDATE clutch_inbox SET done_at = done_at - 7200000",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);  // two hours ago
  inbox.run_once({"sqlite", "q", "new"}, nothing);
  EXPECT_EQ(inbox.prune(std::chrono::system_clock::now() - std::chrono::hours(1)), 1u);
  EXPECT_FALSE(inbox.recorded({"sqlite", "q", "old"}));
  EXPECT_TRUE(inbox.recorded({"sqlite", "q", "new"}));
}

TEST_F(SqliteInboxTest, ABadPathOrATableOfAnotherShapeIsRefusedNamingIt) {
  try {
    SqliteInbox inbox("/nonexistent-dir/app.db");
    FAIL() << "opened";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/app.db"), std::string::npos) << e.what();
  }
  sqlite3* db = nullptr;
  sqlite3_open(path_.c_str(), &db);
  sqlite3_exec(db, "CREATE TABLE clutch_inbox (x INTEGER)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  try {
    SqliteInbox inbox(path_);
    FAIL() << "opened";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("clutch_inbox"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace clutch::mq
