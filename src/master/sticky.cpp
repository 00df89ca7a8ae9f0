#include "master/sticky.hpp"

#include <fmt/format.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace clutch::master {
namespace {

sock_filter stmt(uint16_t code, uint32_t k) {
  return sock_filter{code, 0, 0, k};
}
sock_filter jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
  return sock_filter{code, jt, jf, k};
}

// The IPv4 source address (bytes 12-15 of the IP header; for IPv6, 4 bytes of the source).
constexpr uint32_t kSourceOffset = static_cast<uint32_t>(SKF_NET_OFF) + 12;

}  // namespace

std::vector<sock_filter> sticky_program(const std::vector<bool>& live) {
  std::vector<uint32_t> live_slots, dead_slots;
  for (uint32_t i = 0; i < live.size(); ++i) (live[i] ? live_slots : dead_slots).push_back(i);
  if (live_slots.empty() || dead_slots.size() > 250) return {};
  auto slots = static_cast<uint32_t>(live.size());
  std::vector<sock_filter> p;
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kSourceOffset));
  p.push_back(stmt(BPF_ALU | BPF_MOD | BPF_K, slots));  // A = the address's home slot
  // A dead home slot jumps to the fallback, which starts right after `ret A`.
  for (std::size_t i = 0; i < dead_slots.size(); ++i) {
    auto to_fallback = static_cast<uint8_t>(dead_slots.size() - i);  // the rest, then ret A
    p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, dead_slots[i], to_fallback, 0));
  }
  p.push_back(stmt(BPF_RET | BPF_A, 0));
  // Fallback: source % live count, mapped to the n-th live slot.
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kSourceOffset));
  p.push_back(stmt(BPF_ALU | BPF_MOD | BPF_K, static_cast<uint32_t>(live_slots.size())));
  for (uint32_t n = 0; n < live_slots.size(); ++n) {
    p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, n, 0, 1));
    p.push_back(stmt(BPF_RET | BPF_K, live_slots[n]));
  }
  p.push_back(stmt(BPF_RET | BPF_K, live_slots.front()));
  return p;
}

int sticky_pick(const std::vector<bool>& live, uint32_t source) {
  // A tiny interpreter of exactly the instructions sticky_program emits.
  std::vector<sock_filter> p = sticky_program(live);
  if (p.empty()) return -1;
  uint32_t a = 0;
  for (std::size_t pc = 0; pc < p.size(); ++pc) {
    const sock_filter& f = p[pc];
    switch (f.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        a = source;
        break;
      case BPF_ALU | BPF_MOD | BPF_K:
        a %= f.k;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        pc += a == f.k ? f.jt : f.jf;
        break;
      case BPF_RET | BPF_A:
        return static_cast<int>(a);
      case BPF_RET | BPF_K:
        return static_cast<int>(f.k);
      default:
        return -2;
    }
  }
  return -3;
}

bool attach_sticky_program(int fd, const std::vector<sock_filter>& program, std::string& error) {
  if (program.empty()) return true;  // nothing live: leave the kernel's choice
  sock_fprog prog{static_cast<unsigned short>(program.size()),
                  const_cast<sock_filter*>(program.data())};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) != 0) {
    error = fmt::format("SO_ATTACH_REUSEPORT_CBPF: {}", std::strerror(errno));
    return false;
  }
  return true;
}

}  // namespace clutch::master
