#include "master/inherited_sockets.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>

namespace clutch::master {
namespace {

constexpr int kFirstFd = 3;  // SD_LISTEN_FDS_START

std::vector<std::string> split(const std::string& text, char by) {
  std::vector<std::string> out;
  std::size_t at = 0;
  for (;;) {
    std::size_t end = text.find(by, at);
    out.push_back(text.substr(at, end == std::string::npos ? end : end - at));
    if (end == std::string::npos) return out;
    at = end + 1;
  }
}

int socket_type(int fd, int& listening) {
  int type = 0;
  socklen_t length = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0) return -1;
  length = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0) listening = 0;
  return type;
}

}  // namespace

InheritedSockets take_inherited_sockets() {
  InheritedSockets out;
  const char* pid_text = std::getenv("LISTEN_PID");
  const char* fds_text = std::getenv("LISTEN_FDS");
  if (pid_text == nullptr || fds_text == nullptr || std::atoi(pid_text) != getpid()) return out;
  int count = std::atoi(fds_text);
  std::string names_text = std::getenv("LISTEN_FDNAMES") ? std::getenv("LISTEN_FDNAMES") : "";
  std::vector<std::string> names = split(names_text, ':');
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  for (int i = 0; i < count && i < 64; ++i) {
    int fd = kFirstFd + i;
    std::string name = i < static_cast<int>(names.size()) ? names[i] : "";
    int listening = 0;
    int type = socket_type(fd, listening);
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    if (high < 0)
      throw std::runtime_error(fmt::format("inherited fd {} ({}) is not open", fd, name));
    close(fd);
    if (name == kFdNameUpgrade) {
      out.upgrade = high;
      continue;
    }
    if (type != SOCK_STREAM || !listening) {
      throw std::runtime_error(fmt::format("inherited fd {} ({}) is not a listening stream socket",
                                           fd, name.empty() ? "?" : name));
    }
    if (name == kFdNameControl)
      out.control = high;
    else if (name == kFdNameMetrics)
      out.metrics = high;
    else
      out.listen.push_back(high);
  }
  return out;
}

bool pass_sockets_in_child(const std::vector<int>& fds, const std::string& names) {
  // First above every target, so that moving one into place never overwrites another.
  std::vector<int> high;
  int floor = kFirstFd + static_cast<int>(fds.size()) + 100;
  for (int fd : fds) {
    int h = fcntl(fd, F_DUPFD, floor);
    if (h < 0) return false;
    high.push_back(h);
  }
  for (std::size_t i = 0; i < high.size(); ++i) {
    int target = kFirstFd + static_cast<int>(i);
    if (dup2(high[i], target) < 0) return false;  // dup2 leaves the copy without FD_CLOEXEC
  }
  // Nothing else of this master's goes to the new one (its children's channels above all).
  int first_other = kFirstFd + static_cast<int>(fds.size());
  close_range(static_cast<unsigned>(first_other), ~0U, 0);
  setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
  setenv("LISTEN_FDS", std::to_string(fds.size()).c_str(), 1);
  setenv("LISTEN_FDNAMES", names.c_str(), 1);
  return true;
}

}  // namespace clutch::master
