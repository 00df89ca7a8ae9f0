// Large payloads past the socket: the sender writes the bytes once into a sealed memfd, the fd
// travels with a small frame (kFlagSharedPayload), and the receiver maps it read-only. The kernel
// counts the references, so a region lives exactly as long as some process (the sender until
// it sends, the master while it may redeliver, a receiver while it reads) holds it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace clutch::ipc {

// Payloads of at least this many bytes take the shared path (below it the socket is cheaper:
// a memfd costs a few system calls and page faults).
inline constexpr std::size_t kSharedPayloadMin = 64 * 1024;

// A sealed memfd holding `bytes`, or -1 (errno set) if one cannot be made (then send inline).
int make_shared_payload(std::string_view bytes);

// Why the descriptor cannot be a shared payload of `size` bytes, or "" if it can: a memfd whose
// size is `size` (at most `max_size`) and that is sealed against writes and resizing, so that
// nobody can change or truncate it under a reader.
std::string check_shared_payload(int fd, uint64_t size, std::size_t max_size);

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
