// A send the messenger refuses (its queue to the master is full, the master is gone) must not
// leave the agent's bookkeeping wrong for good: the job can tick again, the consumer's window
// stays whole, and the refused message goes back to its queue.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "fake_context.hpp"
#include "mq/consumer.hpp"
#include "mq/sqlite_source.hpp"
#include "schedule/scheduler.hpp"
#include "sqlite_test_file.hpp"

namespace clutch {
namespace {

TEST(SchedulerSendFailure, ARefusedTickDoesNotLeaveTheJobRunning) {
  testing::FakeContext ctx;
  schedule::JobList jobs;
  jobs.push_back({JobOptions{.name = "tick", .interval = "1s"}, [](Context&) {}});
  schedule::install_agent_clock(ctx, jobs);
  ctx.ready();
  ctx.fake.refuse = true;
  ctx.fire_timers();  // tick 1: refused
  EXPECT_TRUE(ctx.fake.sent.empty());
  ctx.fake.refuse = false;
  ctx.fire_timers();  // tick 2 must go out, not be skipped as "still running"
  ASSERT_EQ(ctx.fake.sent.size(), 1u);
  EXPECT_EQ(ctx.fake.sent[0].action, "schedule:run:tick");
  EXPECT_EQ(ctx.fake.sent[0].data, "2");
}

class ConsumerSendFailure : public testing::SqliteFileTest {
 protected:
  void install(testing::FakeContext& ctx) {
    mq::ConsumerList consumers;
    consumers.push_back(
        {ConsumeOptions{.name = "q", .url = "sqlite:" + path_, .max_in_flight_per_worker = 4},
         [](Context&, const QueueMessage&) {}});
    mq::install_agent_consumers(ctx, consumers);
  }
};

TEST_F(ConsumerSendFailure, RefusedMessagesGoBackAndTheWindowStaysWhole) {
  mq::SqliteSource queue(path_);
  for (int i = 0; i < 20; ++i) queue.publish("m" + std::to_string(i));
  testing::FakeContext ctx;
  install(ctx);
  ctx.fake.refuse = true;
  ctx.ready();
  EXPECT_TRUE(ctx.fake.sent.empty());
  ASSERT_EQ(ctx.fake.writable.size(), 1u) << "the consumer waits for the messenger";
  ctx.fake.refuse = false;
  auto writable = std::exchange(ctx.fake.writable, {});
  writable[0]();
  // Whatever was refused was released, not left hidden: all 20 flow through a window of 4.
  std::size_t handled = 0;
  for (int round = 0; round < 50 && handled < 20; ++round) {
    handled += ctx.fake.ack_all();
    ctx.run_posted();
    ctx.fire_timers();
  }
  EXPECT_EQ(handled, 20u);
  EXPECT_EQ(queue.pending(), 0u);
}

TEST_F(ConsumerSendFailure, AMessageTooLargeToSendIsDeadLetteredNotFetchedForever) {
  mq::SqliteSource queue(path_);
  testing::FakeContext ctx;
  ctx.cfg.max_message_size = 1024;
  for (int i = 0; i < 6; ++i) queue.publish(std::string(2000, 'x'));
  queue.publish("small");
  install(ctx);
  ctx.ready();
  ASSERT_EQ(ctx.fake.sent.size(), 1u);
  EXPECT_NE(ctx.fake.sent[0].data.find("small"), std::string::npos);
  EXPECT_EQ(ctx.fake.ack_all(), 1u);
  ctx.run_posted();
  EXPECT_EQ(queue.dead_letters(), 6u);
}

}  // namespace
}  // namespace clutch
