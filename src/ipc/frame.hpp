// The wire format of the messenger: fixed 32-byte header, then the action name, then the payload.
// Pure code, no I/O: the master forwards frames by reading only the header, so everything it
// needs to route (kind, route, target pid, lengths) lives there and payloads are never decoded.
// What a route or a sender role means is the messenger's business (messaging/wire.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace clutch::ipc {

inline constexpr uint16_t kFrameMagic = 0xC1C7;
inline constexpr std::size_t kHeaderSize = 32;
inline constexpr std::size_t kMaxActionLength = 255;
// An idempotency key travels as a prefix of the payload: one length byte, then the key. 254
// keeps the prefix within the kMaxActionLength bytes every channel allows over
// max_message_size, so a keyed message of max_message_size still passes.
inline constexpr std::size_t kMaxKeyLength = 254;

// What a frame is. Numbers are part of the wire format.
enum class FrameKind : uint8_t {
  kMessage = 1,  // user or runtime message, routed by `route`
  kAck = 2,      // receiver -> master -> sender: an acknowledged message was handled (or failed)
  kReply = 3,    // answer to a request, routed to `target_pid`
  kError = 4,    // master -> sender: the frame with this id could not be delivered
  kControl = 5,  // child <-> master lifecycle (ready, fatal, draining); never reaches user code
};

enum FrameFlags : uint8_t {
  kFlagWantAck = 1 << 0,  // send_random with acknowledged delivery
  kFlagRequest = 1 << 1,  // the sender waits for a kReply with the same id
  kFlagFailed = 1 << 2,   // on kAck / kReply: the handler failed; payload is the error text
  kFlagKeyed = 1 << 3,    // the payload starts with an idempotency key: [u8 length][key bytes]
  // The payload's bytes are not in the frame but in a memfd (sealed against shrinking) that
  // travels with it over the socket (SCM_RIGHTS); the frame's payload (after any key) is a
  // SharedRef. For large payloads: written once by the sender, read once by the receiver,
  // whatever the master does in between (ipc/shared_payload.hpp).
  kFlagSharedPayload = 1 << 4,
};

// What a shared-payload frame carries in place of its payload: a number for the descriptor (the
// sender's for its region; the master renumbers it with its own token, as it does ids) and the
// payload's size.
inline constexpr std::size_t kSharedRefSize = 16;
struct SharedRef {
  uint64_t token = 0;
  uint64_t size = 0;
};

struct FrameHeader {
  FrameKind kind = FrameKind::kMessage;
  // Two bytes that belong to the layer above (the messenger, messaging/wire.hpp): where a message
  // goes and who sent it. ipc carries them and lets the master stamp the sender; it gives them no
  // meaning.
  uint8_t route = 0;
  uint8_t sender_role = 0;
  uint8_t flags = 0;
  uint16_t action_length = 0;
  uint32_t payload_length = 0;
  int32_t target_pid = 0;
  int32_t sender_pid = 0;
  uint64_t id = 0;

  std::size_t body_size() const { return std::size_t{action_length} + payload_length; }
  std::size_t frame_size() const { return kHeaderSize + body_size(); }
};

enum class DecodeStatus {
  kOk,         // a whole frame is available
  kNeedMore,   // not enough bytes yet; not an error
  kBadMagic,   // not a clutch frame: the peer is broken or hostile
  kBadKind,    // unknown kind
  kBadAction,  // action longer than kMaxActionLength
  kTooLarge,   // payload longer than the configured limit
  kBadKey,     // kFlagKeyed with a key prefix that does not fit in the payload
  kBadShared,  // kFlagSharedPayload with a payload that is not a SharedRef
};

std::string_view to_string(DecodeStatus status);

// Reads one header from the start of `bytes`. On kOk, the whole frame
// (header.frame_size() bytes) is present in `bytes`.
DecodeStatus decode_header(std::span<const std::byte> bytes, std::size_t max_payload,
                           FrameHeader& out);

// Writes the header into exactly kHeaderSize bytes at `out`.
void encode_header(const FrameHeader& header, std::byte* out);

// Overwrites the sender fields of an encoded header in place; the master stamps every frame it
// forwards so a receiver always learns who really sent it.
void stamp_sender(std::byte* encoded_header, uint8_t role, int32_t pid);
// The flags of an encoded header (no checks: for frames already decoded once).
uint8_t flags_of(const std::byte* encoded_header);
// Overwrites the id of an encoded header in place (the master renumbers acknowledged messages).
void stamp_id(std::byte* encoded_header, uint64_t id);

// Appends a whole frame to `out` (a std::vector<std::byte> or an ipc::ByteBuffer); no allocation
// when `out` has the capacity.
template <typename Buffer>
void append_frame(Buffer& out, FrameHeader header, std::string_view action,
                  std::string_view payload, std::string_view key = {}) {
  std::size_t prefix = key.empty() ? 0 : 1 + key.size();
  if (prefix != 0) header.flags |= kFlagKeyed;
  header.action_length = static_cast<uint16_t>(action.size());
  header.payload_length = static_cast<uint32_t>(prefix + payload.size());
  std::size_t at = out.size();
  out.resize(at + header.frame_size());
  std::byte* p = out.data() + at;
  encode_header(header, p);
  p += kHeaderSize;
  if (!action.empty()) std::memcpy(p, action.data(), action.size());
  p += action.size();
  if (prefix != 0) {
    *p = static_cast<std::byte>(key.size());
    std::memcpy(p + 1, key.data(), key.size());
    p += prefix;
  }
  if (!payload.empty()) std::memcpy(p, payload.data(), payload.size());
}

// A decoded frame whose views point into the buffer it was decoded from.
// A keyed frame's key is split off its payload here, so receivers see the payload as sent.
struct FrameView {
  FrameHeader header;
  std::string_view action;
  std::string_view payload;  // for kFlagSharedPayload: the SharedRef's bytes
  std::string_view key;
  // kFlagSharedPayload: the descriptor that came with the frame, open until the frame callback
  // returns (dup it to keep it); -1 otherwise.
  int fd = -1;
};
FrameView view_frame(const FrameHeader& header, const std::byte* frame_start);

// The SharedRef of a shared-payload frame's view (decode_header checked its size).
SharedRef read_shared_ref(const FrameView& view);
// The 16 bytes a sender puts in place of a payload of `size` bytes; `token` is the sender's
// number for the region (the master replaces it with its own).
std::string encode_shared_ref(uint64_t token, uint64_t size);
// Overwrites the token of the frame at `frame_start` (whose view is `view`) in place.
void stamp_shared_token(std::byte* frame_start, const FrameView& view, uint64_t token);

}  // namespace clutch::ipc
