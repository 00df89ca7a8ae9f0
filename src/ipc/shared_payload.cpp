#include "ipc/shared_payload.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace clutch::ipc {
namespace {
constexpr int kSeals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
}

int make_shared_payload(std::string_view bytes) {
  int fd = memfd_create("clutch-payload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -1;
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int saved = errno;
      ::close(fd);
      errno = saved == 0 ? EIO : saved;
      return -1;
    }
    done += static_cast<std::size_t>(n);
  }
  if (fcntl(fd, F_ADD_SEALS, kSeals) != 0) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

std::string check_shared_payload(int fd, uint64_t size, std::size_t max_size) {
  if (size > max_size) {
    return "shared payload of " + std::to_string(size) + " bytes is over max_message_size (" +
           std::to_string(max_size) + " bytes)";
  }
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) return std::string("shared payload is not a memfd: ") + std::strerror(errno);
  if ((seals & (F_SEAL_WRITE | F_SEAL_SHRINK)) != (F_SEAL_WRITE | F_SEAL_SHRINK))
    return "shared payload is not sealed against writes and shrinking";
  struct stat st {};
  if (fstat(fd, &st) != 0) return std::string("shared payload: ") + std::strerror(errno);
  if (static_cast<uint64_t>(st.st_size) != size) {
    return "shared payload holds " + std::to_string(st.st_size) + " bytes, its frame says " +
           std::to_string(size);
  }
  return "";
}

MappedPayload::MappedPayload(int fd, uint64_t size, std::size_t max_size) {
  error_ = check_shared_payload(fd, size, max_size);
  if (!error_.empty() || size == 0) return;
  void* p = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
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
