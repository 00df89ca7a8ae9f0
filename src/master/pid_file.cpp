#include "master/pid_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace clutch::master {

void write_pid_file(const std::string& path, pid_t pid) {
  std::string temporary = fmt::format("{}.{}.tmp", path, pid);
  std::string text = fmt::format("{}\n", pid);
  int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw std::runtime_error(
        fmt::format("pid_file: cannot write {}: {}", path, std::strerror(errno)));
  bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int saved = errno;
  close(fd);
  if (!written || rename(temporary.c_str(), path.c_str()) != 0) {
    if (written) saved = errno;
    unlink(temporary.c_str());
    throw std::runtime_error(
        fmt::format("pid_file: cannot write {}: {}", path, std::strerror(saved)));
  }
}

void remove_pid_file_if_ours(const std::string& path, pid_t pid) {
  std::ifstream in(path);
  long long held = 0;
  if (in >> held && held == pid) unlink(path.c_str());
}

}  // namespace clutch::master
