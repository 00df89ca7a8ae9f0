#include "ipc/shared_payload.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace clutch::ipc {

std::string check_shared_payload(int fd, uint64_t size, std::size_t max_size) {
  if (size > max_size) {
    return "shared payload of " + std::to_string(size) + " bytes is over max_message_size (" +
           std::to_string(max_size) + " bytes)";
  }
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) return std::string("shared payload is not a memfd: ") + std::strerror(errno);
  if ((seals & F_SEAL_SHRINK) == 0) return "shared payload is not sealed against shrinking";
  struct stat st {};
  if (fstat(fd, &st) != 0) return std::string("shared payload: ") + std::strerror(errno);
  if (static_cast<uint64_t>(st.st_size) < size) {
    return "shared payload holds " + std::to_string(st.st_size) + " bytes, its frame says " +
           std::to_string(size);
  }
  return "";
}

PayloadPool::~PayloadPool() {
  for (auto& [seq, region] : lent_) ::close(region.fd);
  for (auto& region : free_) ::close(region.fd);
}

PayloadPool::Lent PayloadPool::lend(std::string_view bytes) {
  // The region is dropped (not pooled again) on any failure; errno stays the failure's.
  auto fail = [](int fd) {
    int saved = errno == 0 ? EIO : errno;
    if (fd >= 0) ::close(fd);
    errno = saved;
    return Lent{};
  };
  // The smallest free region that holds it; else the largest, which grows; else a new one.
  Region region;
  auto fits = std::find_if(free_.begin(), free_.end(),
                           [&](const Region& r) { return r.capacity >= bytes.size(); });
  if (fits == free_.end() && !free_.empty()) fits = free_.end() - 1;
  if (fits != free_.end()) {
    region = *fits;
    free_bytes_ -= region.capacity;
    free_.erase(fits);
  } else {
    region.fd = memfd_create("clutch-payload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (region.fd < 0 || fcntl(region.fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0) return fail(region.fd);
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n =
        ::pwrite(region.fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(region.fd);
    done += static_cast<std::size_t>(n);
  }
  region.capacity = std::max(region.capacity, bytes.size());
  int copy = fcntl(region.fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) return fail(region.fd);
  uint64_t seq = next_seq_++;
  lent_[seq] = region;
  return {copy, seq};
}

void PayloadPool::give_back(uint64_t seq) {
  auto it = lent_.find(seq);
  if (it == lent_.end()) return;
  Region region = it->second;
  lent_.erase(it);
  if (free_.size() >= kMaxFree || free_bytes_ + region.capacity > kMaxFreeBytes) {
    ::close(region.fd);  // its pages go once the last reader lets go
    return;
  }
  auto at =
      std::lower_bound(free_.begin(), free_.end(), region,
                       [](const Region& a, const Region& b) { return a.capacity < b.capacity; });
  free_.insert(at, region);
  free_bytes_ += region.capacity;
}

MappedPayload::MappedPayload(int fd, uint64_t size, std::size_t max_size) {
  error_ = check_shared_payload(fd, size, max_size);
  if (!error_.empty() || size == 0) return;
  // Populated at once: one call instead of a page fault per 4 KiB the reader touches.
  void* p = mmap(nullptr, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) {
    error_ = std::string("cannot map a shared payload: ") + std::strerror(errno);
    return;
  }
  data_ = p;
  size_ = size;
}

MappedPayload::~MappedPayload() {
  if (data_ != nullptr) munmap(data_, size_);
}

}  // namespace clutch::ipc
