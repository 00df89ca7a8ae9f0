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

struct stat;

namespace clutch::ipc {

// Payloads of at least this many bytes take the shared path. Below it the socket is cheaper
// (bench/messenger, 2 workers: 128 KiB went 0.86x through a memfd, 1 MiB 1.7x): mapping and
// unmapping a region costs about what copying a couple of hundred KiB does.
inline constexpr std::size_t kSharedPayloadMin = 256 * 1024;

// Why the descriptor cannot hold a shared payload of `size` bytes, or "" if it can: a memfd
// sealed against shrinking, holding at least `size` bytes, `size` at most `max_size`. Its fstat
// is left in `*st` when given (a reader names the region by it).
std::string check_shared_payload(int fd, uint64_t size, std::size_t max_size,
                                 struct stat* st = nullptr);

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
    std::size_t capacity = 0;  // the memfd's size, and its mapping's
    void* data = nullptr;      // mapped for writing while the region lives
  };
  // Makes `region` (a new one if it has no memfd) hold at least `bytes`; false with errno.
  static bool fit(Region& region, std::size_t bytes);
  static void release(Region& region);
  std::unordered_map<uint64_t, Region> lent_;
  std::vector<Region> free_;
  std::size_t free_bytes_ = 0;
  uint64_t next_seq_ = 1;
};

// A receiver's mappings of the regions payloads arrive in, kept for the next payload in the same
// region: senders reuse their regions, so mapping (with its page-table set-up) and unmapping every
// message would cost a large share of reading it (bench/messenger, 1 MiB: about a third of a
// worker's time). Regions are named by inode, which cannot be reused while a mapping holds it.
//
// Bounded: after each payload is handled, trim() keeps at most kMaxKept mappings and
// kMaxKeptBytes, least recently used first out. A kept mapping holds its region's pages even
// after the sender lets the region go; the bounds cap that, and the process's exit ends it.
class PayloadMappings {
 public:
  static constexpr std::size_t kMaxKept = 8;
  static constexpr std::size_t kMaxKeptBytes = std::size_t{64} << 20;

  PayloadMappings() = default;
  ~PayloadMappings();
  PayloadMappings(const PayloadMappings&) = delete;
  PayloadMappings& operator=(const PayloadMappings&) = delete;

  struct View {
    std::string_view bytes;  // the payload; valid until trim()
    std::string error;       // why it cannot be read, or ""
  };
  // The first `size` bytes of the region `fd` refers to, checked with check_shared_payload and
  // mapped read-only.
  View view(int fd, uint64_t size, std::size_t max_size);
  // Lets go of the mappings past the bounds. Every view handed out since the last trim() ends.
  void trim();

  std::size_t kept() const { return kept_.size(); }
  std::size_t kept_bytes() const { return kept_bytes_; }

 private:
  struct Mapping {
    uint64_t dev = 0;
    uint64_t ino = 0;
    void* data = nullptr;
    std::size_t length = 0;
  };
  std::vector<Mapping> kept_;     // most recently used first
  std::vector<Mapping> retired_;  // replaced by a larger mapping; unmapped at trim()
  std::size_t kept_bytes_ = 0;
};

}  // namespace clutch::ipc
