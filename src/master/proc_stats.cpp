#include "master/proc_stats.hpp"

#include <fmt/format.h>
#include <netinet/in.h>
#include <strings.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

namespace clutch::master {
namespace {

// The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses).
std::string stat_fields(pid_t pid) {
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto paren = text.rfind(')');
  return paren == std::string::npos || paren + 2 >= text.size() ? std::string()
                                                                : text.substr(paren + 2);
}

}  // namespace

std::size_t resident_bytes(pid_t pid) {
  // RssAnon + RssFile: the memory that is this process's own. RssShmem is left out: it is shared
  // memory, above all the regions large messages travel in, which the sender's pool keeps mapped
  // and receivers keep mapped for the next one (ipc/shared_payload.hpp). Counted here, a burst of
  // large messages would read as growth and max_rss would replace healthy processes.
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  std::size_t kib = 0;
  int found = 0;
  while (found < 2 && std::getline(status, line)) {
    if (line.rfind("RssAnon:", 0) == 0 || line.rfind("RssFile:", 0) == 0) {
      kib += std::strtoull(line.c_str() + 8, nullptr, 10);
      ++found;
    }
  }
  if (found == 2) return kib * 1024;
  // A kernel without those fields (before 4.5): all of it.
  std::ifstream statm(fmt::format("/proc/{}/statm", pid));
  std::size_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

double cpu_seconds(pid_t pid) {
  std::istringstream fields(stat_fields(pid));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Field 3 of stat is the state; utime and stime are fields 14 and 15 (12 and 13 after it).
  for (int i = 1; i <= 13 && fields >> field; ++i) {
    if (i == 12) utime = std::stoull(field);
    if (i == 13) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

long tcp_socket_uid(std::string_view table, std::string_view client, std::string_view server) {
  std::istringstream lines{std::string(table)};
  std::string line;
  std::getline(lines, line);  // the header
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits;
    long uid = -1;
    if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid))
      continue;
    if (strcasecmp(local.c_str(), std::string(client).c_str()) == 0 &&
        strcasecmp(remote.c_str(), std::string(server).c_str()) == 0)
      return uid;
  }
  return -1;
}

std::string proc_net_endpoint(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(address);
    return fmt::format("{:08X}:{:04X}", in.sin_addr.s_addr, ntohs(in.sin_port));
  }
  const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
  uint32_t words[4];
  std::memcpy(words, &in6.sin6_addr, sizeof words);
  return fmt::format("{:08X}{:08X}{:08X}{:08X}:{:04X}", words[0], words[1], words[2], words[3],
                     ntohs(in6.sin6_port));
}

long loopback_peer_uid(int fd) {
  sockaddr_storage local{}, peer{};
  socklen_t length = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) return -1;
  length = sizeof peer;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) return -1;
  bool loopback = peer.ss_family == AF_INET
                      ? (ntohl(reinterpret_cast<sockaddr_in&>(peer).sin_addr.s_addr) >> 24) == 127
                      : IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<sockaddr_in6&>(peer).sin6_addr);
  if (!loopback) return -1;  // another host's process: no uid to check
  std::ifstream in(peer.ss_family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6");
  std::string table((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return tcp_socket_uid(table, proc_net_endpoint(peer), proc_net_endpoint(local));
}

bool process_is_stopped(pid_t pid) {
  std::string fields = stat_fields(pid);
  return !fields.empty() && (fields[0] == 'T' || fields[0] == 't');
}

}  // namespace clutch::master
