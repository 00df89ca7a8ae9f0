// Redis replies built in the arena (mq/reply_arena.hpp) read exactly as hiredis's own, and the
// arena reuses its memory only once no reply is held: a reply kept while others come and go
// stays intact.
#include "mq/reply_arena.hpp"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <string>
#include <string_view>

namespace clutch::mq {
namespace {

class ReplyArenaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    reader_ = redisReaderCreate();
    arena_.attach(reader_);
  }
  void TearDown() override { redisReaderFree(reader_); }

  redisReply* read(std::string_view wire) {
    EXPECT_EQ(redisReaderFeed(reader_, wire.data(), wire.size()), REDIS_OK);
    void* reply = nullptr;
    EXPECT_EQ(redisReaderGetReply(reader_, &reply), REDIS_OK);
    return static_cast<redisReply*>(reply);
  }

  // An XREADGROUP reply: [[stream, [[id, [body, value]] x count]]].
  static std::string entries(int count, const std::string& value) {
    std::string wire = "*1\r\n*2\r\n$5\r\norder\r\n*" + std::to_string(count) + "\r\n";
    for (int i = 0; i < count; ++i) {
      std::string id = "1-" + std::to_string(i);
      wire += "*2\r\n$" + std::to_string(id.size()) + "\r\n" + id + "\r\n*2\r\n$4\r\nbody\r\n$" +
              std::to_string(value.size()) + "\r\n" + value + "\r\n";
    }
    return wire;
  }

  static void expect_entries(const redisReply* r, int count, const std::string& value) {
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
    ASSERT_EQ(r->elements, 1u);
    const redisReply* stream = r->element[0];
    ASSERT_EQ(stream->elements, 2u);
    EXPECT_EQ(std::string_view(stream->element[0]->str, stream->element[0]->len), "order");
    const redisReply* list = stream->element[1];
    ASSERT_EQ(list->elements, static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
      const redisReply* entry = list->element[i];
      ASSERT_EQ(entry->elements, 2u);
      EXPECT_STREQ(entry->element[0]->str, ("1-" + std::to_string(i)).c_str());
      const redisReply* fields = entry->element[1];
      ASSERT_EQ(fields->elements, 2u);
      EXPECT_STREQ(fields->element[0]->str, "body");
      ASSERT_EQ(fields->element[1]->len, value.size());
      EXPECT_EQ(std::string_view(fields->element[1]->str, fields->element[1]->len), value);
    }
  }

  redisReader* reader_ = nullptr;
  ReplyArena arena_;
};

TEST_F(ReplyArenaTest, EveryKindOfReplyReadsAsHiredisBuildsIt) {
  redisReply* r = read("*5\r\n+OK\r\n-ERR no\r\n:42\r\n$-1\r\n*0\r\n");
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
  ASSERT_EQ(r->elements, 5u);
  EXPECT_EQ(r->element[0]->type, REDIS_REPLY_STATUS);
  EXPECT_STREQ(r->element[0]->str, "OK");
  EXPECT_EQ(r->element[1]->type, REDIS_REPLY_ERROR);
  EXPECT_STREQ(r->element[1]->str, "ERR no");
  EXPECT_EQ(r->element[2]->type, REDIS_REPLY_INTEGER);
  EXPECT_EQ(r->element[2]->integer, 42);
  EXPECT_EQ(r->element[3]->type, REDIS_REPLY_NIL);
  EXPECT_EQ(r->element[4]->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(r->element[4]->elements, 0u);
  EXPECT_EQ(arena_.held(), 1u);
  arena_.release(r);
  EXPECT_EQ(arena_.held(), 0u);
}

TEST_F(ReplyArenaTest, AHeldReplyStaysIntactWhileOthersComeAndGo) {
  // Several blocks' worth (64 KiB each), and a value too large for a block.
  redisReply* kept = read(entries(2000, "kept-value"));
  expect_entries(kept, 2000, "kept-value");
  for (int round = 0; round < 3; ++round) {
    redisReply* other = read(entries(500, std::string(40000, 'x')));
    expect_entries(other, 500, std::string(40000, 'x'));
    arena_.release(other);
  }
  expect_entries(kept, 2000, "kept-value");
  arena_.release(kept);
  // Once none is held the memory is reused, and what comes next is whole.
  redisReply* next = read(entries(300, "next"));
  expect_entries(next, 300, "next");
  arena_.release(next);
  EXPECT_EQ(arena_.held(), 0u);
}

TEST_F(ReplyArenaTest, AReplyCutByAProtocolErrorIsGivenBack) {
  std::string wire = "*2\r\n$3\r\nabc\r\n?garbage\r\n";
  ASSERT_EQ(redisReaderFeed(reader_, wire.data(), wire.size()), REDIS_OK);
  void* reply = nullptr;
  EXPECT_EQ(redisReaderGetReply(reader_, &reply), REDIS_ERR);
  EXPECT_EQ(reply, nullptr);
  EXPECT_EQ(arena_.held(), 0u) << "the half-built reply still counts as held";
}

}  // namespace
}  // namespace clutch::mq
