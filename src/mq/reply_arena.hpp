// hiredis's reply objects for one connection, carved from reused blocks instead of malloc'd one
// by one. An XREADGROUP of 256 entries is about 1,800 reply objects (each entry an array, its id,
// its field array, the field and the value, and two element vectors), each allocated and then
// freed by freeReplyObject: glibc malloc was about 40% of the agent's Redis thread in bench/mq,
// a quarter of it malloc_consolidate merging those frees whenever a command buffer next needed a
// large block. Here a reply costs a bump of a pointer, and the blocks are reused as soon as no
// reply is held.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

struct redisReader;
struct redisReply;

namespace clutch::mq {

class ReplyArena {
 public:
  ReplyArena() = default;
  ReplyArena(const ReplyArena&) = delete;
  ReplyArena& operator=(const ReplyArena&) = delete;

  // From now on `reader` builds its replies here (they are redisReply, read as usual, and must
  // be let go with release(), never freeReplyObject). The arena must outlive the reader.
  void attach(redisReader* reader);
  // A whole reply hiredis handed out is done with. Once none is held, the blocks are reused.
  void release(redisReply* reply);
  std::size_t held() const { return held_; }

 private:
  friend struct ArenaFunctions;
  void* allocate(std::size_t size);
  void root_made() { ++held_; }
  void reset();

  std::vector<std::unique_ptr<std::byte[]>> blocks_;  // kBlock bytes each, reused
  std::vector<std::unique_ptr<std::byte[]>> large_;   // one per outsized object, freed on reset
  std::size_t block_ = 0, used_ = 0;                  // where the next object goes
  std::size_t held_ = 0;                              // whole replies handed out, not released
};

// For std::unique_ptr<redisReply, ReplyRelease>.
struct ReplyRelease {
  ReplyArena* arena = nullptr;
  void operator()(redisReply* reply) const { arena->release(reply); }
};

}  // namespace clutch::mq
