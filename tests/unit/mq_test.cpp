#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "clutch/config.hpp"
#include "mq/amqp_url.hpp"
#include "mq/consumer.hpp"
#include "mq/postgres_url.hpp"
#include "mq/redis_source.hpp"
#include "mq/sqlite_source.hpp"
#include "sqlite_test_file.hpp"

namespace clutch::mq {
namespace {

TEST(RedisUrl, ParsesHostPortStreamAndGroup) {
  RedisUrl u = parse_redis_url("redis://127.0.0.1:6380/orders?group=billing&consumer=c1");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.stream, "orders");
  EXPECT_EQ(u.group, "billing");
  EXPECT_EQ(u.consumer, "c1");
  RedisUrl d = parse_redis_url("redis://localhost/jobs");
  EXPECT_EQ(d.port, 6379);
  EXPECT_EQ(d.group, "clutch");
  EXPECT_EQ(d.consumer.rfind("clutch-", 0), 0u);
}

TEST(RedisUrl, RejectsWhatItCannotUseWithTheReason) {
  for (auto [url, why] :
       {std::pair{"http://x/y", "must start with redis://"},
        std::pair{"redis://host", "no stream name"},
        std::pair{"redis://host:99999/s", "bad port '99999'"},
        std::pair{"redis://host:abc/s", "bad port 'abc'"}, std::pair{"redis://:6379/s", "no host"},
        std::pair{"redis://host:6379/", "no stream name"}}) {
    try {
      parse_redis_url(url);
      FAIL() << url;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << url << ": " << e.what();
    }
  }
}

TEST(PostgresUrl, TakesTheTableOutAndKeepsLibpqsOwnParameters) {
  PostgresUrl u = parse_postgres_url(
      "postgres://app:pw@db.local:5433/shop?sslmode=require&table=orders&application_name=x");
  EXPECT_EQ(u.table, "orders");
  EXPECT_EQ(u.conninfo, "postgres://app:pw@db.local:5433/shop?sslmode=require&application_name=x");
  PostgresUrl d = parse_postgres_url("postgresql://127.0.0.1/jobs");
  EXPECT_EQ(d.table, "clutch_queue");
  EXPECT_EQ(d.conninfo, "postgresql://127.0.0.1/jobs");
  EXPECT_EQ(parse_postgres_url("postgres://h/db?table=t").conninfo, "postgres://h/db");
}

TEST(PostgresUrl, RejectsWhatItCannotUseWithoutShowingThePassword) {
  for (auto [url, why] : {
           std::pair{"postgres://u:secret@host", "no database"},
           std::pair{"postgres://u:secret@host/", "no database"},
           std::pair{"postgres://u:secret@host?table=t", "no database"},
           std::pair{"postgres://u:secret@host/db?table=a-b", "table 'a-b' is not a plain name"},
           std::pair{"postgres://u:secret@host/db?table=x;drop", "is not a plain name"},
           std::pair{"postgres://u:secret@host/db?table=1t", "is not a plain name"},
           std::pair{"postgres://u:secret@host/db?table=", "is not a plain name"},
           std::pair{"postgres://u:secret@host/db?table=t23456789012345678901234567890123456789012",
                     "at most 40 characters"},
       }) {
    try {
      parse_postgres_url(url);
      FAIL() << url;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << url << ": " << e.what();
      EXPECT_EQ(std::string(e.what()).find("secret"), std::string::npos) << e.what();
    }
  }
}

TEST(AmqpUrl, ParsesCredentialsVhostQueueAndOptions) {
  AmqpUrl u = parse_amqp_url(
      "amqp://app:s%40cret@10.0.0.5:5673/"
      "prod%2Feu?queue=orders&dead=orders-dlq&prefetch=32&heartbeat=0");
  EXPECT_EQ(u.user, "app");
  EXPECT_EQ(u.password, "s@cret");
  EXPECT_EQ(u.host, "10.0.0.5");
  EXPECT_EQ(u.port, 5673);
  EXPECT_EQ(u.vhost, "prod/eu");
  EXPECT_EQ(u.queue, "orders");
  EXPECT_EQ(u.dead_queue, "orders-dlq");
  EXPECT_EQ(u.prefetch, 32);
  EXPECT_EQ(u.heartbeat_s, 0);
  AmqpUrl d = parse_amqp_url("amqp://rabbit?queue=jobs");
  EXPECT_EQ(d.host, "rabbit");
  EXPECT_EQ(d.port, 5672);
  EXPECT_EQ(d.user, "guest");
  EXPECT_EQ(d.vhost, "/");
  EXPECT_EQ(d.dead_queue, "jobs.dead");
  EXPECT_EQ(d.prefetch, 256);
  AmqpUrl v6 = parse_amqp_url("amqp://[::1]:5680/%2F?queue=q");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 5680);
  EXPECT_EQ(v6.vhost, "/");
}

TEST(AmqpUrl, RejectsWhatItCannotUseWithTheReason) {
  for (auto [url, why] : {std::pair{"redis://x/y", "must start with amqp://"},
                          std::pair{"amqp://host/%2F", "no queue"},
                          std::pair{"amqp://host:0/?queue=q", "port must be a number"},
                          std::pair{"amqp://host:x/?queue=q", "port must be a number"},
                          std::pair{"amqp://host/%ZZ?queue=q", "malformed %-escape"},
                          std::pair{"amqp://host?queue=q&prefetch=0", "prefetch must be"},
                          std::pair{"amqp://host?queue=q&dead=q", "dead= must name another"},
                          std::pair{"amqp://[::1?queue=q", "unclosed '['"}}) {
    try {
      parse_amqp_url(url);
      FAIL() << url;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << url << ": " << e.what();
    }
  }
}

TEST(StreamId, OrdersByTimeThenSequenceNotAsText) {
  EXPECT_TRUE(stream_id_less("1700000000000-3", "1700000000000-10"));  // text order says no
  EXPECT_TRUE(stream_id_less("999-5", "1000-0"));
  EXPECT_FALSE(stream_id_less("1000-0", "999-5"));
  EXPECT_FALSE(stream_id_less("5-5", "5-5"));
  EXPECT_TRUE(stream_id_less("", "0-1"));  // nothing seen yet sorts first
  EXPECT_FALSE(stream_id_less("0-1", ""));
}

TEST(Delivery, RoundTripsIdAttemptsAndBinaryBody) {
  QueueMessage m{"1700000000000-3", std::string("line1\nline2\0x", 13), 2};
  QueueMessage back = decode_delivery(encode_delivery(m));
  EXPECT_EQ(back.id, m.id);
  EXPECT_EQ(back.attempts, 2);
  EXPECT_EQ(back.body, m.body);
}

TEST(Delivery, RoundTripsHeadersWhateverBytesTheyHold) {
  QueueMessage m{"7", "body\nwith 12:colons", 1};
  m.headers = {{"tenant", "t1"}, {"odd:key\n", std::string("v\0:9:x", 6)}, {"empty", ""}};
  QueueMessage back = decode_delivery(encode_delivery(m));
  EXPECT_EQ(back.id, "7");
  EXPECT_EQ(back.attempts, 1);
  EXPECT_EQ(back.headers, m.headers);
  EXPECT_EQ(back.body, m.body);
  ASSERT_NE(back.header("tenant"), nullptr);
  EXPECT_EQ(*back.header("tenant"), "t1");
  EXPECT_EQ(back.header("nope"), nullptr);
}

TEST(Delivery, ABlockCutShortKeepsWhatIsWholeAndNeverReadsPastTheEnd) {
  QueueMessage m{"7", "b", 0};
  m.headers = {{"a", "1"}, {"bb", "22"}};
  std::string wire = encode_delivery(m);
  for (std::size_t cut = 0; cut < wire.size(); ++cut) {
    QueueMessage back = decode_delivery(std::string_view(wire).substr(0, cut));
    EXPECT_LE(back.headers.size(), 2u);  // ASan checks the reads
  }
}

using SqliteQueueTest = testing::SqliteFileTest;

TEST_F(SqliteQueueTest, FetchHidesAckDeletesRetryCountsDeadLetterMoves) {
  SqliteSource q(path_, std::chrono::milliseconds(60000));
  q.publish("a");
  q.publish("b");
  q.publish("c");
  auto first = q.fetch(2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].body, "a");
  EXPECT_EQ(q.fetch(10).size(), 1u) << "fetched messages stay hidden";
  EXPECT_TRUE(q.fetch(10).empty());
  q.ack(first[0]);
  q.retry(first[1], std::chrono::milliseconds(0), "boom");
  auto again = q.fetch(10);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].body, "b");
  EXPECT_EQ(again[0].attempts, 1);
  q.dead_letter(again[0], "boom twice");
  EXPECT_EQ(q.dead_letters(), 1u);
  EXPECT_EQ(q.pending(), 1u);  // "c", still hidden
  q.recover_in_flight();
  auto recovered = q.fetch(10);
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].body, "c");
}

TEST_F(SqliteQueueTest, TwoHandlesOnOneFileNeverTakeTheSameMessage) {
  SqliteSource a(path_), b(path_);
  for (int i = 0; i < 100; ++i) a.publish(std::to_string(i));
  std::size_t taken = 0;
  for (int round = 0; round < 20; ++round) taken += a.fetch(3).size() + b.fetch(4).size();
  EXPECT_EQ(taken, 100u);
}

// Makes one kind of write fail from inside SQLite (as a full disk or a constraint would), through
// a second connection, so the queue's own handle sees a statement that does not complete.
void add_failing_trigger(const std::string& path, const std::string& trigger) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  ASSERT_EQ(sqlite3_exec(db, trigger.c_str(), nullptr, nullptr, &error), SQLITE_OK) << error;
  sqlite3_close(db);
}

TEST_F(SqliteQueueTest, AFailedAckOfABatchRollsItAllBackAndTheHandleStaysUsable) {
  SqliteSource q(path_, std::chrono::milliseconds(0));
  for (const char* body : {"a", "b", "c"}) q.publish(body);
  auto batch = q.fetch(3);
  ASSERT_EQ(batch.size(), 3u);
  add_failing_trigger(path_, "CREATE TRIGGER no_delete BEFORE DELETE ON messages WHEN old.id = " +
                                 batch[1].id + " BEGIN SELECT RAISE(ABORT, 'disk says no'); END");
  EXPECT_THROW(q.ack_many(batch), std::runtime_error);
  EXPECT_EQ(q.pending(), 3u) << "a batch is acknowledged whole or not at all";
  // No transaction was left open: the next write transaction starts.
  EXPECT_EQ(q.fetch(10).size(), 3u);
  q.ack_many({batch[0], batch[2]});
  EXPECT_EQ(q.pending(), 1u);
}

TEST_F(SqliteQueueTest, AFailedDeadLetterKeepsTheMessage) {
  SqliteSource q(path_, std::chrono::milliseconds(60000));
  q.publish("poison");
  auto taken = q.fetch(1);
  ASSERT_EQ(taken.size(), 1u);
  add_failing_trigger(path_,
                      "CREATE TRIGGER no_dead BEFORE INSERT ON dead_letters BEGIN "
                      "SELECT RAISE(ABORT, 'disk says no'); END");
  EXPECT_THROW(q.dead_letter(taken[0], "boom"), std::runtime_error);
  EXPECT_EQ(q.dead_letters(), 0u);
  EXPECT_EQ(q.pending(), 1u) << "a message that could not be dead-lettered must not be deleted";
  q.recover_in_flight();
  EXPECT_EQ(q.fetch(1).size(), 1u) << "and no transaction was left open";
}

TEST(OpenSource, UnknownSchemeNamesTheSupportedOnes) {
  try {
    open_message_source("kafka://x");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("sqlite:PATH"), std::string::npos);
  }
}

}  // namespace
}  // namespace clutch::mq
