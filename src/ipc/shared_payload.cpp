#include "ipc/shared_payload.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace clutch::ipc {

std::string check_shared_payload(int fd, uint64_t size, std::size_t max_size, struct stat* st_out) {
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
  if (st_out != nullptr) *st_out = st;
  return "";
}

namespace {

// Regions grow in steps, so payloads of slightly different sizes share one without remapping.
constexpr std::size_t kRegionStep = 64 * 1024;

std::size_t region_size_for(std::size_t bytes) {
  return (bytes + kRegionStep - 1) / kRegionStep * kRegionStep;
}

}  // namespace

PayloadPool::~PayloadPool() {
  for (auto& [seq, region] : lent_) release(region);
  for (auto& region : free_) release(region);
}

void PayloadPool::release(Region& region) {
  if (region.data != nullptr) munmap(region.data, region.capacity);
  if (region.fd >= 0) ::close(region.fd);
  region = Region{};
}

bool PayloadPool::fit(Region& region, std::size_t bytes) {
  if (region.fd >= 0 && region.capacity >= bytes) return true;
  if (region.fd < 0) {
    region.fd = memfd_create("clutch-payload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (region.fd < 0 || fcntl(region.fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0) return false;
  }
  // Grown, never shrunk (the seal): receivers' mappings of the old size stay valid.
  std::size_t capacity = region_size_for(bytes);
  if (ftruncate(region.fd, static_cast<off_t>(capacity)) != 0) return false;
  if (region.data != nullptr) munmap(region.data, region.capacity);
  region.data = nullptr;
  region.capacity = 0;
  // Written through a mapping kept with the region: a memcpy, where pwrite looked up and locked
  // each page. Populated at once, so a new region takes no fault per page.
  void* p =
      mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, region.fd, 0);
  if (p == MAP_FAILED) return false;
  region.data = p;
  region.capacity = capacity;
  return true;
}

PayloadPool::Lent PayloadPool::lend(std::string_view bytes) {
  // The smallest free region that holds it; else the largest, which grows; else a new one.
  Region region;
  auto fits = std::find_if(free_.begin(), free_.end(),
                           [&](const Region& r) { return r.capacity >= bytes.size(); });
  if (fits == free_.end() && !free_.empty()) fits = free_.end() - 1;
  if (fits != free_.end()) {
    region = *fits;
    free_bytes_ -= region.capacity;
    free_.erase(fits);
  }
  int copy = -1;
  if (fit(region, bytes.size())) {
    std::memcpy(region.data, bytes.data(), bytes.size());
    copy = fcntl(region.fd, F_DUPFD_CLOEXEC, 3);
  }
  if (copy < 0) {
    // The region is dropped (not pooled again); errno stays the failure's.
    int saved = errno == 0 ? EIO : errno;
    release(region);
    errno = saved;
    return Lent{};
  }
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
    release(region);  // its pages go once the last reader lets go
    return;
  }
  auto at =
      std::lower_bound(free_.begin(), free_.end(), region,
                       [](const Region& a, const Region& b) { return a.capacity < b.capacity; });
  free_.insert(at, region);
  free_bytes_ += region.capacity;
}

PayloadMappings::~PayloadMappings() {
  for (auto* list : {&kept_, &retired_})
    for (Mapping& m : *list) munmap(m.data, m.length);
}

PayloadMappings::View PayloadMappings::view(int fd, uint64_t size, std::size_t max_size) {
  View out;
  struct stat st {};
  out.error = check_shared_payload(fd, size, max_size, &st);
  if (!out.error.empty() || size == 0) return out;
  auto same = [&](const Mapping& m) {
    return m.dev == static_cast<uint64_t>(st.st_dev) && m.ino == static_cast<uint64_t>(st.st_ino);
  };
  auto it = std::find_if(kept_.begin(), kept_.end(), same);
  if (it != kept_.end() && it->length >= size) {
    std::rotate(kept_.begin(), it, it + 1);  // most recently used first
    out.bytes = {static_cast<const char*>(kept_.front().data), size};
    return out;
  }
  if (it != kept_.end()) {  // the sender grew the region: map it again, whole
    kept_bytes_ -= it->length;
    retired_.push_back(*it);
    kept_.erase(it);
  }
  // The whole region, populated at once: one call instead of a page fault per 4 KiB, and the
  // next payload the sender writes into it needs no set-up at all.
  auto length = static_cast<std::size_t>(st.st_size);
  void* p = mmap(nullptr, length, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) {
    out.error = std::string("cannot map a shared payload: ") + std::strerror(errno);
    return out;
  }
  kept_.insert(kept_.begin(),
               {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), p, length});
  kept_bytes_ += length;
  out.bytes = {static_cast<const char*>(p), size};
  return out;
}

void PayloadMappings::trim() {
  for (Mapping& m : retired_) munmap(m.data, m.length);
  retired_.clear();
  while (!kept_.empty() && (kept_.size() > kMaxKept || kept_bytes_ > kMaxKeptBytes)) {
    munmap(kept_.back().data, kept_.back().length);
    kept_bytes_ -= kept_.back().length;
    kept_.pop_back();
  }
}

}  // namespace clutch::ipc
