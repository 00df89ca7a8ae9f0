#include "master/shared_payloads.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace clutch::master {

uint64_t SharedPayloads::adopt(int fd, uint64_t size, pid_t sender, uint64_t sender_seq) {
  if (bytes_ + size > limit_) return 0;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) return 0;
  uint64_t token = next_token_++;
  entries_[token] = Entry{copy, size, 1, sender, sender_seq};
  bytes_ += size;
  return token;
}

void SharedPayloads::retain(uint64_t token) {
  if (auto it = entries_.find(token); it != entries_.end()) ++it->second.refs;
}

void SharedPayloads::release(uint64_t token) {
  auto it = entries_.find(token);
  if (it == entries_.end() || --it->second.refs > 0) return;
  Entry gone = it->second;
  entries_.erase(it);
  ::close(gone.fd);
  bytes_ -= gone.size;
  if (on_free) on_free(gone.sender, gone.sender_seq);
}

int SharedPayloads::fd(uint64_t token) const {
  auto it = entries_.find(token);
  return it == entries_.end() ? -1 : it->second.fd;
}

}  // namespace clutch::master
