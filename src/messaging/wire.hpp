// The messenger's meaning for two bytes of the ipc frame header: where a message goes (its
// route, chosen by the sender) and who sent it (its role, stamped by the master). ipc carries
// them without knowing what they mean; the master and the children's messenger agree on them
// here. Values are part of the wire format.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "clutch/messenger.hpp"
#include "ipc/frame.hpp"

namespace clutch::messaging {

// Where a kMessage frame goes; resolved by the master.
enum class Route : uint8_t {
  kNone = 0,
  kBroadcast = 1,  // every agent and worker, the sender included
  kApp = 2,        // every worker
  kOthers = 3,     // every worker but the sender
  kAgent = 4,      // the agent
  kRandom = 5,     // exactly one live worker
  kPid = 6,        // the process `target_pid`
};
inline constexpr std::size_t kRouteCount = 7;

// Control op, child -> master: "I have read and let go of shared payload TOKEN, of N bytes"
// (payload "TOKEN N"), so that it stops counting against what the master queues for this child
// and, once nobody else holds it, its sender may reuse the region.
inline constexpr std::string_view kPayloadRead = "payload-read";
// Control op, master -> child: "I have taken N bytes of your shared payloads off your hands"
// (routed or refused), so that they stop counting against the child's own send queue: a sender
// whose receivers fall behind (the master stops reading it) then fills its queue and is told.
inline constexpr std::string_view kPayloadTaken = "payload-taken";
// Control op, master -> child: "every receiver has read your shared payload SEQ": its region may
// be written again (ipc::PayloadPool::give_back).
inline constexpr std::string_view kPayloadFree = "payload-free";

// The numbers those control ops carry, as decimal text ("N", or "TOKEN N" for kPayloadRead).
// A malformed one reads as 0, which names no payload and releases no bytes.
inline uint64_t parse_count(std::string_view text) {
  uint64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}
inline std::string payload_read_text(uint64_t token, uint64_t size) {
  return std::to_string(token) + " " + std::to_string(size);
}
inline std::pair<uint64_t, uint64_t> parse_payload_read(std::string_view text) {
  auto space = text.find(' ');
  if (space == std::string_view::npos) return {0, 0};
  return {parse_count(text.substr(0, space)), parse_count(text.substr(space + 1))};
}

// A header's route; nullopt for a value no sender may use.
inline std::optional<Route> route_of(const ipc::FrameHeader& h) {
  if (h.route == 0 || h.route >= kRouteCount) return std::nullopt;
  return static_cast<Route>(h.route);
}
inline void set_route(ipc::FrameHeader& h, Route route) {
  h.route = static_cast<uint8_t>(route);
}

// The public clutch::Role on the wire; 0 is "not stamped".
inline constexpr uint8_t wire_role(Role role) {
  return static_cast<uint8_t>(role) + 1;
}
inline std::optional<Role> role_of(const ipc::FrameHeader& h) {
  if (h.sender_role == 0 || h.sender_role > wire_role(Role::kWorker)) return std::nullopt;
  return static_cast<Role>(h.sender_role - 1);
}
inline void set_sender(ipc::FrameHeader& h, Role role, int32_t pid) {
  h.sender_role = wire_role(role);
  h.sender_pid = pid;
}
// Overwrites the sender of an encoded frame in place (the master stamps every frame it forwards).
inline void stamp_sender(std::byte* encoded_header, Role role, int32_t pid) {
  ipc::stamp_sender(encoded_header, wire_role(role), pid);
}

std::string_view to_string(Route route);
// (Roles print with the public clutch::to_string(Role).)

}  // namespace clutch::messaging
