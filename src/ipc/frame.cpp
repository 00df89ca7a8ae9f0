#include "ipc/frame.hpp"

#include <bit>
#include <cstring>
#include <type_traits>

namespace clutch::ipc {
namespace {

// Offsets of the header fields; the format is little-endian whatever the host.
constexpr std::size_t kOffMagic = 0, kOffKind = 2, kOffRoute = 3, kOffRole = 4, kOffFlags = 5,
                      kOffAction = 6, kOffPayload = 8, kOffTarget = 12, kOffSender = 16,
                      kOffReserved = 20, kOffId = 24;

// One load or store per field on a little-endian host (the compiler did not merge the byte
// loops for 4- and 8-byte fields: decode and encode showed in every process's profile), a byte
// swap elsewhere.
template <typename T>
T from_little_endian(T value) {
  if constexpr (std::endian::native == std::endian::little || sizeof(T) == 1) {
    return value;
  } else {
    using U = std::make_unsigned_t<T>;
    auto bits = static_cast<U>(value);
    U swapped = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i)
      swapped = (swapped << 8) | ((bits >> (8 * i)) & 0xFF);
    return static_cast<T>(swapped);
  }
}

template <typename T>
T load(const std::byte* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return from_little_endian(value);
}

template <typename T>
void store(std::byte* p, T value) {
  value = from_little_endian(value);  // the same swap both ways
  std::memcpy(p, &value, sizeof(T));
}

bool valid_kind(uint8_t kind) {
  return kind >= 1 && kind <= 5;
}

}  // namespace

std::string_view to_string(DecodeStatus status) {
  switch (status) {
    case DecodeStatus::kOk:
      return "ok";
    case DecodeStatus::kNeedMore:
      return "incomplete frame";
    case DecodeStatus::kBadMagic:
      return "bad frame header (wrong magic or reserved bits)";
    case DecodeStatus::kBadKind:
      return "bad frame kind, route or role";
    case DecodeStatus::kBadAction:
      return "action name too long";
    case DecodeStatus::kTooLarge:
      return "payload larger than max_message_size";
    case DecodeStatus::kBadKey:
      return "idempotency key longer than its payload";
    case DecodeStatus::kBadShared:
      return "shared-payload frame without a 16-byte reference";
  }
  return "unknown";
}

DecodeStatus decode_header(std::span<const std::byte> bytes, std::size_t max_payload,
                           FrameHeader& out) {
  if (bytes.size() < kHeaderSize) {
    // Reject garbage as early as its first two bytes, not only once 32 have arrived.
    if (bytes.size() >= 2 && load<uint16_t>(bytes.data()) != kFrameMagic) {
      return DecodeStatus::kBadMagic;
    }
    return DecodeStatus::kNeedMore;
  }
  const std::byte* p = bytes.data();
  if (load<uint16_t>(p + kOffMagic) != kFrameMagic || load<uint32_t>(p + kOffReserved) != 0) {
    return DecodeStatus::kBadMagic;
  }
  uint8_t kind = load<uint8_t>(p + kOffKind), route = load<uint8_t>(p + kOffRoute),
          role = load<uint8_t>(p + kOffRole);
  if (!valid_kind(kind)) return DecodeStatus::kBadKind;
  FrameHeader h;
  h.kind = static_cast<FrameKind>(kind);
  h.route = route;
  h.sender_role = role;
  h.flags = load<uint8_t>(p + kOffFlags);
  h.action_length = load<uint16_t>(p + kOffAction);
  h.payload_length = load<uint32_t>(p + kOffPayload);
  h.target_pid = load<int32_t>(p + kOffTarget);
  h.sender_pid = load<int32_t>(p + kOffSender);
  h.id = load<uint64_t>(p + kOffId);
  if (h.action_length > kMaxActionLength) return DecodeStatus::kBadAction;
  if (h.payload_length > max_payload) return DecodeStatus::kTooLarge;
  out = h;
  if (bytes.size() < h.frame_size()) return DecodeStatus::kNeedMore;
  if (h.flags & kFlagKeyed) {
    // The whole frame is here, so the key's length byte can be checked against the payload.
    if (h.payload_length == 0) return DecodeStatus::kBadKey;
    auto key_length = std::to_integer<std::size_t>(p[kHeaderSize + h.action_length]);
    if (key_length == 0 || key_length > kMaxKeyLength || 1 + key_length > h.payload_length)
      return DecodeStatus::kBadKey;
  }
  if (h.flags & kFlagSharedPayload) {
    std::size_t key_prefix =
        (h.flags & kFlagKeyed) ? 1 + std::to_integer<std::size_t>(p[kHeaderSize + h.action_length])
                               : 0;
    if (h.payload_length != key_prefix + kSharedRefSize) return DecodeStatus::kBadShared;
  }
  return DecodeStatus::kOk;
}

void encode_header(const FrameHeader& h, std::byte* p) {
  store<uint16_t>(p + kOffMagic, kFrameMagic);
  store<uint8_t>(p + kOffKind, static_cast<uint8_t>(h.kind));
  store<uint8_t>(p + kOffRoute, h.route);
  store<uint8_t>(p + kOffRole, h.sender_role);
  store<uint8_t>(p + kOffFlags, h.flags);
  store<uint16_t>(p + kOffAction, h.action_length);
  store<uint32_t>(p + kOffPayload, h.payload_length);
  store<int32_t>(p + kOffTarget, h.target_pid);
  store<int32_t>(p + kOffSender, h.sender_pid);
  store<uint32_t>(p + kOffReserved, 0);
  store<uint64_t>(p + kOffId, h.id);
}

void stamp_sender(std::byte* encoded_header, uint8_t role, int32_t pid) {
  store<uint8_t>(encoded_header + kOffRole, role);
  store<int32_t>(encoded_header + kOffSender, pid);
}

uint8_t flags_of(const std::byte* encoded_header) {
  return load<uint8_t>(encoded_header + kOffFlags);
}

void stamp_id(std::byte* encoded_header, uint64_t id) {
  store<uint64_t>(encoded_header + kOffId, id);
}

FrameView view_frame(const FrameHeader& header, const std::byte* frame_start) {
  const char* body = reinterpret_cast<const char*>(frame_start + kHeaderSize);
  FrameView view{header,
                 std::string_view(body, header.action_length),
                 std::string_view(body + header.action_length, header.payload_length),
                 {}};
  if (header.flags & kFlagKeyed) {
    // decode_header checked that the key fits.
    auto key_length = static_cast<unsigned char>(view.payload.front());
    view.key = view.payload.substr(1, key_length);
    view.payload.remove_prefix(1 + key_length);
  }
  return view;
}

SharedRef read_shared_ref(const FrameView& view) {
  const auto* p = reinterpret_cast<const std::byte*>(view.payload.data());
  return SharedRef{load<uint64_t>(p), load<uint64_t>(p + 8)};
}

std::string encode_shared_ref(uint64_t token, uint64_t size) {
  std::string out(kSharedRefSize, '\0');
  auto* p = reinterpret_cast<std::byte*>(out.data());
  store<uint64_t>(p, token);
  store<uint64_t>(p + 8, size);
  return out;
}

void stamp_shared_token(std::byte* frame_start, const FrameView& view, uint64_t token) {
  auto offset = reinterpret_cast<const std::byte*>(view.payload.data()) - frame_start;
  store<uint64_t>(frame_start + offset, token);
}

}  // namespace clutch::ipc
