// What a handler registered with on/once/off sees, including when handlers add or remove
// handlers while a message is being dispatched (the dispatch loop holds plain pointers to them and
// remembers the last action's handlers, so removal must wait for it, and a lookup must never be
// stale).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <memory>
#include <string>
#include <vector>

#include "ipc/channel.hpp"
#include "ipc/frame.hpp"
#include "messaging/wire.hpp"
#include "runtime/messenger_client.hpp"

namespace clutch::runtime {
namespace {

class MessengerHandlers : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0);
    client_ = std::make_shared<MessengerClient>(
        io_, std::make_shared<ipc::Channel>(io_, fds_[0], 1 << 20), Role::kWorker, 1 << 20);
  }
  void TearDown() override { ::close(fds_[1]); }

  // A plain send_to_app from the agent, as the master hands it on.
  void deliver(std::string_view action, std::string_view data) {
    ipc::FrameView frame;
    frame.header.kind = ipc::FrameKind::kMessage;
    messaging::set_route(frame.header, messaging::Route::kApp);
    messaging::set_sender(frame.header, Role::kAgent, 4242);
    frame.header.action_length = static_cast<uint16_t>(action.size());
    frame.header.payload_length = static_cast<uint32_t>(data.size());
    frame.action = action;
    frame.payload = data;
    client_->handle_frame(frame);
  }

  asio::io_context io_;
  int fds_[2] = {-1, -1};
  std::shared_ptr<MessengerClient> client_;
  std::vector<std::string> seen_;
};

TEST_F(MessengerHandlers, EachActionReachesItsOwnHandlersWhateverTheOrder) {
  client_->on("a", [&](const Message& m) { seen_.push_back("a:" + std::string(m.data())); });
  client_->on("b", [&](const Message& m) { seen_.push_back("b:" + std::string(m.data())); });
  deliver("a", "1");
  deliver("a", "2");
  deliver("b", "3");
  deliver("a", "4");
  deliver("ab", "5");  // a name that shares a prefix with the last one is not it
  EXPECT_EQ(seen_, (std::vector<std::string>{"a:1", "a:2", "b:3", "a:4"}));
}

TEST_F(MessengerHandlers, AHandlerAddedAfterItsActionWentUnhandledGetsTheNextOne) {
  deliver("late", "1");
  client_->on("late", [&](const Message& m) { seen_.emplace_back(m.data()); });
  deliver("late", "2");
  EXPECT_EQ(seen_, (std::vector<std::string>{"2"}));
}

TEST_F(MessengerHandlers, OnceRunsForTheFirstMessageOnly) {
  client_->once("job", [&](const Message& m) { seen_.push_back("once:" + std::string(m.data())); });
  client_->on("job", [&](const Message& m) { seen_.push_back("on:" + std::string(m.data())); });
  deliver("job", "1");
  deliver("job", "2");
  EXPECT_EQ(seen_, (std::vector<std::string>{"once:1", "on:1", "on:2"}));
}

TEST_F(MessengerHandlers, AHandlerRemovingItselfFinishesAndIsNotCalledAgain) {
  HandlerId self = 0;
  self = client_->on("job", [&](const Message& m) {
    client_->off(self);
    // Its own state is still alive after off (it is destroyed once the dispatch ends).
    seen_.push_back("self:" + std::string(m.data()) + ":" + std::to_string(self));
  });
  client_->on("job", [&](const Message& m) { seen_.push_back("other:" + std::string(m.data())); });
  deliver("job", "1");
  deliver("job", "2");
  EXPECT_EQ(seen_,
            (std::vector<std::string>{"self:1:" + std::to_string(self), "other:1", "other:2"}));
}

TEST_F(MessengerHandlers, OffTheActionInsideAHandlerStopsTheRestAtOnce) {
  client_->on("job", [&](const Message&) {
    seen_.emplace_back("first");
    client_->off("job");
  });
  client_->on("job", [&](const Message&) { seen_.emplace_back("second"); });
  deliver("job", "1");
  deliver("job", "2");
  EXPECT_EQ(seen_, (std::vector<std::string>{"first"}));
  client_->on("job", [&](const Message& m) { seen_.push_back("again:" + std::string(m.data())); });
  deliver("job", "3");
  EXPECT_EQ(seen_, (std::vector<std::string>{"first", "again:3"}));
}

TEST_F(MessengerHandlers, AHandlerAddedWhileDispatchingRunsFromTheNextMessage) {
  client_->on("job", [&](const Message& m) {
    seen_.push_back("first:" + std::string(m.data()));
    if (m.data() == "1") {
      // Enough to move the vector of handlers while it is being walked.
      for (int i = 0; i < 16; ++i)
        client_->on("job", [&, i](const Message& n) {
          if (i == 0) seen_.push_back("added:" + std::string(n.data()));
        });
    }
  });
  deliver("job", "1");
  deliver("job", "2");
  EXPECT_EQ(seen_, (std::vector<std::string>{"first:1", "first:2", "added:2"}));
}

}  // namespace
}  // namespace clutch::runtime
