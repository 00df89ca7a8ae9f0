// The large payloads (memfds, ipc/shared_payload.hpp) the master is passing on. The frame that
// brings one gets a token in place of the sender's number for it; every copy of that frame the
// master keeps (a hold, an acknowledged message it may redeliver) and every receiver that has not
// yet said it read it holds a reference. With the last one the descriptor is closed and the
// sender is told (on_free) that it may write the region again. The bytes are never read here.
#pragma once

#include <sys/types.h>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <unordered_map>

namespace clutch::master {

class SharedPayloads {
 public:
  // Bounded: past `limit` bytes held, new payloads are refused (their senders are told).
  void set_limit(std::size_t bytes) { limit_ = bytes; }
  // Called once a payload has no reference left: `sender` may reuse its region `sender_seq`.
  std::function<void(pid_t sender, uint64_t sender_seq)> on_free;
  // Keeps a duplicate of `fd` under a new token, with one reference. 0 if over the limit or the
  // descriptor cannot be duplicated.
  uint64_t adopt(int fd, uint64_t size, pid_t sender, uint64_t sender_seq);
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
    pid_t sender = 0;
    uint64_t sender_seq = 0;
  };
  std::unordered_map<uint64_t, Entry> entries_;
  uint64_t next_token_ = 1;
  std::size_t bytes_ = 0, limit_ = std::size_t{256} << 20;
};

}  // namespace clutch::master
