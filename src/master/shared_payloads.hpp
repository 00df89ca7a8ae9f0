// The large payloads (memfds, ipc/shared_payload.hpp) the master is passing on. The frame that
// brings one gets a token in place of the sender's 0; every copy of that frame the master keeps
// (a hold, an acknowledged message it may redeliver) holds a reference, and the descriptor is
// closed with the last one. The bytes themselves are never read here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

namespace clutch::master {

class SharedPayloads {
 public:
  // Bounded: past `limit` bytes held, new payloads are refused (their senders are told).
  void set_limit(std::size_t bytes) { limit_ = bytes; }
  // Keeps a duplicate of `fd` under a new token, with one reference. 0 if over the limit or the
  // descriptor cannot be duplicated.
  uint64_t adopt(int fd, uint64_t size);
  void retain(uint64_t token);
  void release(uint64_t token);
  // The descriptor for `token`, or -1.
  int fd(uint64_t token) const;

  std::size_t count() const { return entries_.size(); }
  std::size_t bytes() const { return bytes_; }
  std::size_t limit() const { return limit_; }

 private:
  struct Entry {
    int fd = -1;
    uint64_t size = 0;
    uint32_t refs = 0;
  };
  std::unordered_map<uint64_t, Entry> entries_;
  uint64_t next_token_ = 1;
  std::size_t bytes_ = 0, limit_ = std::size_t{256} << 20;
};

}  // namespace clutch::master
