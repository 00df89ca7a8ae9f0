// Sticky mode (config sticky, with reuse_port): the same client address reaches the same worker,
// as egg's `sticky` does for socket.io, without the master in the data path. A classic BPF
// program attached to the SO_REUSEPORT group picks the socket: slot = source address % slots;
// a slot with no ready worker sends its addresses to the live slots (source % live), so only
// they move and every other address stays where it was. Re-attached when a slot's liveness
// changes. The program's construction is pure.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

namespace clutch::master {

// The program for `live.size()` slots (live[i]: slot i has a ready worker). Empty when no slot
// is live (the kernel's own hash then picks).
std::vector<sock_filter> sticky_program(const std::vector<bool>& live);

// The slot the program picks for an IPv4 source address (host order), as the kernel would run it.
// For tests.
int sticky_pick(const std::vector<bool>& live, uint32_t source);

// Attaches `program` to the reuseport group `fd` belongs to; false with the reason in `error`.
bool attach_sticky_program(int fd, const std::vector<sock_filter>& program, std::string& error);

}  // namespace clutch::master
