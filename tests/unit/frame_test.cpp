#include "ipc/frame.hpp"

#include <gtest/gtest.h>

#include "messaging/wire.hpp"

#include <string>

namespace clutch::ipc {
namespace {

std::vector<std::byte> encode(FrameHeader h, std::string_view action, std::string_view payload) {
  std::vector<std::byte> out;
  append_frame(out, h, action, payload);
  return out;
}

TEST(Frame, RoundTripKeepsEveryField) {
  FrameHeader h;
  h.kind = FrameKind::kMessage;
  h.route = 0xAB;  // ipc carries these two bytes as they are: their meaning is the messenger's
  h.sender_role = 0xCD;
  h.flags = kFlagWantAck | kFlagRequest;
  h.target_pid = 4242;
  h.sender_pid = -7;
  h.id = 0x0102030405060708ULL;
  auto bytes = encode(h, "orders:new", "payload bytes");
  ASSERT_EQ(bytes.size(), kHeaderSize + 10 + 13);

  FrameHeader got;
  ASSERT_EQ(decode_header(bytes, 1 << 20, got), DecodeStatus::kOk);
  EXPECT_EQ(got.kind, FrameKind::kMessage);
  EXPECT_EQ(got.route, 0xAB);
  EXPECT_EQ(got.sender_role, 0xCD);
  EXPECT_EQ(got.flags, kFlagWantAck | kFlagRequest);
  EXPECT_EQ(got.target_pid, 4242);
  EXPECT_EQ(got.sender_pid, -7);
  EXPECT_EQ(got.id, 0x0102030405060708ULL);
  FrameView view = view_frame(got, bytes.data());
  EXPECT_EQ(view.action, "orders:new");
  EXPECT_EQ(view.payload, "payload bytes");
}

TEST(Frame, AKeyTravelsAheadOfThePayloadAndIsSplitOffOnReading) {
  FrameHeader h;
  messaging::set_route(h, messaging::Route::kRandom);
  h.flags = kFlagWantAck;
  std::vector<std::byte> bytes;
  append_frame(bytes, h, "mq:orders", "the body", "mq:orders\n1700000000000-3");
  FrameHeader got;
  ASSERT_EQ(decode_header(bytes, 1 << 20, got), DecodeStatus::kOk);
  EXPECT_EQ(got.flags, kFlagWantAck | kFlagKeyed);
  FrameView view = view_frame(got, bytes.data());
  EXPECT_EQ(view.action, "mq:orders");
  EXPECT_EQ(view.key, "mq:orders\n1700000000000-3");
  EXPECT_EQ(view.payload, "the body");
  // An empty payload after a key of the longest length still fits.
  std::vector<std::byte> longest;
  append_frame(longest, h, "a", "", std::string(kMaxKeyLength, 'k'));
  ASSERT_EQ(decode_header(longest, 0 + 1 + kMaxKeyLength, got), DecodeStatus::kOk);
  EXPECT_EQ(view_frame(got, longest.data()).key.size(), kMaxKeyLength);
  EXPECT_TRUE(view_frame(got, longest.data()).payload.empty());
}

TEST(Frame, AKeyThatDoesNotFitItsPayloadIsRejected) {
  FrameHeader h;
  h.flags = kFlagKeyed;
  FrameHeader got;
  // The flag with no payload at all, a zero-length key, and a key longer than the payload.
  for (std::string payload : {std::string(), std::string(1, '\0'), std::string("\x05abc")}) {
    auto bytes = encode(h, "act", payload);
    EXPECT_EQ(decode_header(bytes, 1 << 20, got), DecodeStatus::kBadKey) << payload.size();
  }
}

TEST(Frame, EmptyActionAndPayload) {
  auto bytes = encode(FrameHeader{}, "", "");
  FrameHeader got;
  ASSERT_EQ(decode_header(bytes, 0, got), DecodeStatus::kOk);
  EXPECT_EQ(got.frame_size(), kHeaderSize);
}

TEST(Frame, EveryPrefixOfAFrameNeedsMore) {
  auto bytes = encode(FrameHeader{}, "a", std::string(100, 'x'));
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    FrameHeader got;
    EXPECT_EQ(decode_header(std::span(bytes.data(), n), 1 << 20, got), DecodeStatus::kNeedMore)
        << "prefix of " << n << " bytes";
  }
}

TEST(Frame, WrongMagicIsRejectedFromTheFirstTwoBytes) {
  std::vector<std::byte> garbage = {std::byte{'G'}, std::byte{'E'}};
  FrameHeader got;
  EXPECT_EQ(decode_header(garbage, 1 << 20, got), DecodeStatus::kBadMagic);
}

TEST(Frame, NonZeroReservedBytesAreRejected) {
  auto bytes = encode(FrameHeader{}, "a", "b");
  bytes[21] = std::byte{1};
  FrameHeader got;
  EXPECT_EQ(decode_header(bytes, 1 << 20, got), DecodeStatus::kBadMagic);
}

TEST(Frame, UnknownKindIsRejected) {
  for (std::size_t offset : {2u}) {
    auto bytes = encode(FrameHeader{}, "a", "b");
    bytes[offset] = std::byte{99};
    FrameHeader got;
    EXPECT_EQ(decode_header(bytes, 1 << 20, got), DecodeStatus::kBadKind) << "offset " << offset;
  }
}

TEST(Frame, PayloadOverTheLimitIsRejectedBeforeItArrives) {
  FrameHeader h;
  h.payload_length = 1001;
  std::vector<std::byte> header(kHeaderSize);
  encode_header(h, header.data());
  FrameHeader got;
  EXPECT_EQ(decode_header(header, 1000, got), DecodeStatus::kTooLarge);
  EXPECT_EQ(decode_header(header, 1001, got), DecodeStatus::kNeedMore);
}

TEST(Frame, OverlongActionIsRejected) {
  FrameHeader h;
  h.action_length = kMaxActionLength + 1;
  std::vector<std::byte> header(kHeaderSize);
  encode_header(h, header.data());
  FrameHeader got;
  EXPECT_EQ(decode_header(header, 1 << 20, got), DecodeStatus::kBadAction);
}

TEST(Frame, StampingRewritesSenderAndIdInPlace) {
  FrameHeader h;
  messaging::set_sender(h, Role::kWorker, 1);
  h.id = 5;
  auto bytes = encode(h, "x", "y");
  messaging::stamp_sender(bytes.data(), Role::kAgent, 777);
  stamp_id(bytes.data(), 99);
  FrameHeader got;
  ASSERT_EQ(decode_header(bytes, 1 << 20, got), DecodeStatus::kOk);
  EXPECT_EQ(messaging::role_of(got), Role::kAgent);
  EXPECT_EQ(got.sender_pid, 777);
  EXPECT_EQ(got.id, 99u);
  EXPECT_EQ(view_frame(got, bytes.data()).payload, "y");
}

TEST(Frame, SeveralFramesInOneBufferDecodeInOrder) {
  std::vector<std::byte> buffer;
  for (int i = 0; i < 50; ++i) {
    FrameHeader h;
    h.id = static_cast<uint64_t>(i);
    append_frame(buffer, h, "n", std::string(static_cast<std::size_t>(i), 'p'));
  }
  std::size_t at = 0;
  for (uint64_t i = 0; i < 50; ++i) {
    FrameHeader got;
    ASSERT_EQ(decode_header(std::span(buffer).subspan(at), 1 << 20, got), DecodeStatus::kOk);
    EXPECT_EQ(got.id, i);
    EXPECT_EQ(got.payload_length, i);
    at += got.frame_size();
  }
  EXPECT_EQ(at, buffer.size());
}

TEST(Wire, RoutesAndRolesReadBackAndUnknownValuesAreRefused) {
  FrameHeader h;
  EXPECT_EQ(messaging::route_of(h), std::nullopt);  // kNone: no sender may use it
  for (auto route :
       {messaging::Route::kBroadcast, messaging::Route::kApp, messaging::Route::kOthers,
        messaging::Route::kAgent, messaging::Route::kRandom, messaging::Route::kPid}) {
    messaging::set_route(h, route);
    EXPECT_EQ(messaging::route_of(h), route);
  }
  h.route = 7;
  EXPECT_EQ(messaging::route_of(h), std::nullopt);
  h.sender_role = 0;
  EXPECT_EQ(messaging::role_of(h), std::nullopt);  // not stamped
  for (Role role : {Role::kMaster, Role::kAgent, Role::kWorker}) {
    messaging::set_sender(h, role, 5);
    EXPECT_EQ(messaging::role_of(h), role);
  }
  h.sender_role = 4;
  EXPECT_EQ(messaging::role_of(h), std::nullopt);
}

}  // namespace
}  // namespace clutch::ipc
