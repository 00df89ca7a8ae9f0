// Large payloads past the socket: the sender copies the bytes once into a memfd, the fd travels
// with a small frame (kFlagSharedPayload), and the receiver maps it read-only. The kernel counts
// the references, so a region lives exactly as long as some process (the sender's pool, the
// master while it may redeliver, a receiver while it reads) holds it.
//
// Regions are reused: allocating and freeing a memfd's pages for every message cost more than
// the socket copies it saves (measured: 0.75x of a socket relay at 1 MiB). The master tells the
// sender when every receiver has read a payload (kPayloadFree), and the sender writes its next
// one into the same pages. So a region is sealed only against shrinking (a reader can never
// fault on a truncated mapping); that the sender does not rewrite it while it is read is the
// messenger's protocol, as for any bytes a process hands another.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace clutch::ipc {

// Payloads of at least this many bytes take the shared path. Below it the socket is cheaper
// (bench/messenger, 2 workers: 128 KiB went 0.86x through a memfd, 1 MiB 1.7x): mapping and
// unmapping a region costs about what copying a couple of hundred KiB does.
inline constexpr std::size_t kSharedPayloadMin = 256 * 1024;

// Why the descriptor cannot hold a shared payload of `size` bytes, or "" if it can: a memfd
// sealed against shrinking, holding at least `size` bytes, `size` at most `max_size`.
std::string check_shared_payload(int fd, uint64_t size, std::size_t max_size);

// A sender's memfds: written, sent, and taken back for the next payload once the master says
// every receiver has read it. Bounded: at most kMaxFree regions (kMaxFreeBytes) wait for reuse.
class PayloadPool {
 public:
  static constexpr std::size_t kMaxFree = 8;
  static constexpr std::size_t kMaxFreeBytes = std::size_t{128} << 20;

  PayloadPool() = default;
  ~PayloadPool();
  PayloadPool(const PayloadPool&) = delete;
  PayloadPool& operator=(const PayloadPool&) = delete;

  struct Lent {
    int fd = -1;       // a duplicate to send (the caller owns it); -1 with errno on failure
    uint64_t seq = 0;  // names the region in kPayloadFree
  };
  // Copies `bytes` into a free region (or a new one) and lends it out.
  Lent lend(std::string_view bytes);
  // The master says every receiver has read region `seq`: it may be written again.
  void give_back(uint64_t seq);

  std::size_t free_regions() const { return free_.size(); }

 private:
  struct Region {
    int fd = -1;
    std::size_t capacity = 0;
  };
  std::unordered_map<uint64_t, Region> lent_;
  std::vector<Region> free_;
  std::size_t free_bytes_ = 0;
  uint64_t next_seq_ = 1;
};

// A shared payload mapped read-only for as long as this lives.
class MappedPayload {
 public:
  MappedPayload() = default;
  // Maps `fd` (checked with check_shared_payload first); on failure, error() says why.
  MappedPayload(int fd, uint64_t size, std::size_t max_size);
  ~MappedPayload();
  MappedPayload(const MappedPayload&) = delete;
  MappedPayload& operator=(const MappedPayload&) = delete;

  const std::string& error() const { return error_; }
  std::string_view bytes() const { return {static_cast<const char*>(data_), size_}; }

 private:
  void* data_ = nullptr;
  std::size_t size_ = 0;
  std::string error_;
};

}  // namespace clutch::ipc
