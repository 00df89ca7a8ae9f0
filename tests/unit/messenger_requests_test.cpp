// Request deadlines: one timer stands for every pending request's deadline, so each request must
// still end exactly once, by its reply or at its own deadline (never earlier), whatever order
// the deadlines were set in.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "ipc/channel.hpp"
#include "ipc/frame.hpp"
#include "messaging/wire.hpp"
#include "runtime/messenger_client.hpp"

namespace clutch::runtime {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

class MessengerRequests : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0);
    client_ = std::make_shared<MessengerClient>(
        io_, std::make_shared<ipc::Channel>(io_, fds_[0], 1 << 20), Role::kAgent, 1 << 20);
    started_ = Clock::now();
  }
  void TearDown() override { ::close(fds_[1]); }

  struct Outcome {
    std::string name;
    bool ok;
    std::string text;
    milliseconds after;
  };

  void ask(const std::string& name, milliseconds timeout) {
    client_->request(Target::random_worker(), name, "q", timeout, [this, name](const Reply& r) {
      outcomes_.push_back({name, r.ok, r.ok ? r.data : r.error,
                           std::chrono::duration_cast<milliseconds>(Clock::now() - started_)});
    });
  }

  // The ids of the requests written so far, in order (as the master would read them).
  std::vector<uint64_t> sent_ids() {
    for (int turn = 0; turn < 100 && io_.poll() > 0; ++turn) {
    }
    std::vector<std::byte> buf(1 << 16);
    ssize_t n = ::recv(fds_[1], buf.data(), buf.size(), MSG_DONTWAIT);
    std::vector<uint64_t> ids;
    for (std::size_t at = 0; n > 0 && at < static_cast<std::size_t>(n);) {
      ipc::FrameHeader h;
      auto rest = std::span<const std::byte>(buf.data() + at, static_cast<std::size_t>(n) - at);
      if (ipc::decode_header(rest, 1 << 20, h) != ipc::DecodeStatus::kOk) break;
      ids.push_back(h.id);
      at += h.frame_size();
    }
    return ids;
  }

  void reply(uint64_t id, std::string_view data) {
    ipc::FrameView frame;
    frame.header.kind = ipc::FrameKind::kReply;
    frame.header.id = id;
    messaging::set_sender(frame.header, Role::kWorker, 4242);
    frame.header.payload_length = static_cast<uint32_t>(data.size());
    frame.payload = data;
    client_->handle_frame(frame);
  }

  asio::io_context io_;
  int fds_[2] = {-1, -1};
  std::shared_ptr<MessengerClient> client_;
  Clock::time_point started_;
  std::vector<Outcome> outcomes_;
};

TEST_F(MessengerRequests, EachEndsOnceByItsReplyOrAtItsOwnDeadlineInWhateverOrderTheyWereSet) {
  ask("late", milliseconds(400));
  ask("early", milliseconds(100));  // earlier than the one the timer was armed for
  ask("answered", milliseconds(50));
  ask("middle", milliseconds(250));
  std::vector<uint64_t> ids = sent_ids();
  ASSERT_EQ(ids.size(), 4u);
  reply(ids[2], "yes");  // before its deadline: it must never time out as well

  for (int turn = 0; turn < 400 && outcomes_.size() < 4; ++turn) io_.run_one_for(milliseconds(20));
  io_.run_for(milliseconds(100));  // a second outcome for anyone would come by now

  ASSERT_EQ(outcomes_.size(), 4u);
  std::vector<std::string> order;
  for (const Outcome& o : outcomes_) order.push_back(o.name);
  EXPECT_EQ(order, (std::vector<std::string>{"answered", "early", "middle", "late"}));
  EXPECT_TRUE(outcomes_[0].ok);
  EXPECT_EQ(outcomes_[0].text, "yes");
  const std::pair<const char*, int> timeouts[] = {{"early", 100}, {"middle", 250}, {"late", 400}};
  for (std::size_t i = 1; i < 4; ++i) {
    const auto& [name, ms] = timeouts[i - 1];
    EXPECT_FALSE(outcomes_[i].ok) << name;
    EXPECT_EQ(outcomes_[i].text,
              "request '" + std::string(name) + "' timed out after " + std::to_string(ms) + " ms");
    EXPECT_GE(outcomes_[i].after.count(), ms) << name << " timed out early";
  }
}

TEST_F(MessengerRequests, ARequestSentFromATimeoutCallbackGetsItsOwnDeadline) {
  client_->request(Target::random_worker(), "first", "q", milliseconds(30), [this](const Reply& r) {
    outcomes_.push_back({"first", r.ok, r.error, {}});
    ask("second", milliseconds(30));
  });
  for (int turn = 0; turn < 400 && outcomes_.size() < 2; ++turn) io_.run_one_for(milliseconds(20));
  ASSERT_EQ(outcomes_.size(), 2u);
  EXPECT_EQ(outcomes_[1].name, "second");
  EXPECT_EQ(outcomes_[1].text, "request 'second' timed out after 30 ms");
}

}  // namespace
}  // namespace clutch::runtime
