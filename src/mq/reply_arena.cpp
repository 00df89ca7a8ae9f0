#include "mq/reply_arena.hpp"

#include <hiredis/hiredis.h>

#include <cstring>
#include <new>

namespace clutch::mq {
namespace {

constexpr std::size_t kBlock = 64 * 1024;
constexpr std::size_t kKeptBlocks = 16;  // 1 MiB of blocks at most survive a reset
constexpr std::size_t kAlign = alignof(std::max_align_t);

// Before every object: which arena it came from (freeObject gets only the object), and whether
// it is a whole reply (only those count as held).
struct Header {
  ReplyArena* arena;
  bool root;
};
constexpr std::size_t kHeaderSize = (sizeof(Header) + kAlign - 1) / kAlign * kAlign;

Header* header_of(void* reply) {
  return reinterpret_cast<Header*>(static_cast<std::byte*>(reply) - kHeaderSize);
}

}  // namespace

// hiredis's reply-building interface (redisReplyObjectFunctions), on the arena.
struct ArenaFunctions {
  static ReplyArena* arena_of(const redisReadTask* task) {
    while (task->parent != nullptr) task = task->parent;
    return static_cast<ReplyArena*>(task->privdata);  // the reader's, copied to its root task
  }

  static redisReply* make(ReplyArena* arena, const redisReadTask* task, int type) {
    void* at = arena->allocate(kHeaderSize + sizeof(redisReply));
    if (at == nullptr) return nullptr;
    new (at) Header{arena, task->parent == nullptr};
    auto* r = new (static_cast<std::byte*>(at) + kHeaderSize) redisReply{};
    r->type = type;
    if (task->parent != nullptr) {
      // An element of the array being read: hiredis leaves the linking to the builder.
      static_cast<redisReply*>(task->parent->obj)->element[task->idx] = r;
    } else {
      arena->root_made();
    }
    return r;
  }

  static void* create_string(const redisReadTask* task, char* text, size_t length) {
    ReplyArena* arena = arena_of(task);
    redisReply* r = make(arena, task, task->type);
    if (r == nullptr) return nullptr;
    auto* copy = static_cast<char*>(arena->allocate(length + 1));
    if (copy == nullptr) return nullptr;
    std::memcpy(copy, text, length);
    copy[length] = '\0';
    r->str = copy;
    r->len = length;
    return r;
  }

  static void* create_array(const redisReadTask* task, int elements) {
    ReplyArena* arena = arena_of(task);
    redisReply* r = make(arena, task, REDIS_REPLY_ARRAY);
    if (r == nullptr) return nullptr;
    if (elements > 0) {
      std::size_t bytes = sizeof(redisReply*) * static_cast<std::size_t>(elements);
      auto* vector = static_cast<redisReply**>(arena->allocate(bytes));
      if (vector == nullptr) return nullptr;
      std::memset(vector, 0, bytes);
      r->element = vector;
    }
    r->elements = static_cast<std::size_t>(elements);
    return r;
  }

  static void* create_integer(const redisReadTask* task, long long value) {
    redisReply* r = make(arena_of(task), task, REDIS_REPLY_INTEGER);
    if (r != nullptr) r->integer = value;
    return r;
  }

  static void* create_nil(const redisReadTask* task) {
    return make(arena_of(task), task, REDIS_REPLY_NIL);
  }

  // hiredis calls it for a reply it drops (a protocol error mid-reply, the reader freed with a
  // reply half read): the same as the owner's release.
  static void free_object(void* reply) {
    Header* header = header_of(reply);
    if (header->root) header->arena->release(static_cast<redisReply*>(reply));
  }
};

namespace {
redisReplyObjectFunctions arena_functions = {
    ArenaFunctions::create_string, ArenaFunctions::create_array, ArenaFunctions::create_integer,
    ArenaFunctions::create_nil, ArenaFunctions::free_object};
}  // namespace

void ReplyArena::attach(redisReader* reader) {
  reader->fn = &arena_functions;
  reader->privdata = this;
}

void ReplyArena::release(redisReply* reply) {
  if (reply == nullptr || held_ == 0) return;
  if (--held_ == 0) reset();
}

void* ReplyArena::allocate(std::size_t size) {
  size = (size + kAlign - 1) / kAlign * kAlign;
  if (size > kBlock / 4) {
    // A large value (a big message body): a block of its own, given back at the next reset.
    large_.push_back(std::unique_ptr<std::byte[]>(new (std::nothrow) std::byte[size]));
    return large_.back().get();
  }
  if (blocks_.empty() || used_ + size > kBlock) {
    if (!blocks_.empty()) ++block_;
    if (block_ == blocks_.size()) {
      blocks_.push_back(std::unique_ptr<std::byte[]>(new (std::nothrow) std::byte[kBlock]));
      if (blocks_.back() == nullptr) {
        blocks_.pop_back();
        return nullptr;
      }
    }
    used_ = 0;
  }
  void* at = blocks_[block_].get() + used_;
  used_ += size;
  return at;
}

void ReplyArena::reset() {
  block_ = 0;
  used_ = 0;
  large_.clear();
  if (blocks_.size() > kKeptBlocks) blocks_.resize(kKeptBlocks);
}

}  // namespace clutch::mq
