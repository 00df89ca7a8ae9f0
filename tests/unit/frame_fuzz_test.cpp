// The frame decoder against generated hostile input: random bytes, valid frames cut short,
// corrupted valid frames and oversized lengths. Every input must come back as a status value:
// no crash, no read past the input (ASan watches), and kOk only for frames that fit.
#include <gtest/gtest.h>

#include <random>

#include "ipc/frame.hpp"
#include "messaging/wire.hpp"

namespace clutch::ipc {
namespace {

constexpr int kInputs = 120'000;
constexpr std::size_t kLimit = 4096;

// Decodes a buffer the way a channel does; returns false if a claimed frame overruns the input.
bool decode_all(const std::vector<std::byte>& input, int& frames, int& errors) {
  std::size_t at = 0;
  while (at < input.size()) {
    // Copy the rest into an exact-size heap buffer so ASan catches any overread.
    std::vector<std::byte> rest(input.begin() + static_cast<std::ptrdiff_t>(at), input.end());
    FrameHeader h;
    DecodeStatus s = decode_header(rest, kLimit, h);
    if (s == DecodeStatus::kNeedMore) return true;
    if (s != DecodeStatus::kOk) {
      ++errors;
      return true;
    }
    if (h.frame_size() > rest.size() || h.payload_length > kLimit) return false;
    FrameView v = view_frame(h, rest.data());
    volatile std::size_t touch = v.action.size() + v.payload.size();
    (void)touch;
    at += h.frame_size();
    ++frames;
  }
  return true;
}

TEST(FrameFuzz, GeneratedInputsAreErrorsOrValidFramesNeverCrashes) {
  std::mt19937_64 rng(20261125);
  auto byte = [&] { return static_cast<std::byte>(rng() & 0xFF); };
  int frames = 0, errors = 0;
  for (int i = 0; i < kInputs; ++i) {
    std::vector<std::byte> input;
    switch (i % 4) {
      case 0: {  // pure noise
        input.resize(rng() % 200);
        for (auto& b : input) b = byte();
        break;
      }
      case 1: {  // valid frames, truncated anywhere
        FrameHeader h;
        h.kind = FrameKind::kMessage;
        messaging::set_route(h, messaging::Route::kRandom);
        append_frame(input, h, "act", std::string(rng() % 300, 'x'));
        append_frame(input, h, "b", std::string(rng() % 50, 'y'));
        input.resize(rng() % (input.size() + 1));
        break;
      }
      case 2: {  // valid frame with a few bytes flipped (lengths, kinds, magic)
        FrameHeader h;
        append_frame(input, h, "action", std::string(rng() % 100, 'z'));
        for (int flips = 1 + static_cast<int>(rng() % 3); flips > 0; --flips) {
          input[rng() % input.size()] = byte();
        }
        break;
      }
      case 3: {  // a header claiming a huge payload
        FrameHeader h;
        h.payload_length = static_cast<uint32_t>(rng());
        h.action_length = static_cast<uint16_t>(rng());
        input.resize(kHeaderSize);
        encode_header(h, input.data());
        break;
      }
    }
    ASSERT_TRUE(decode_all(input, frames, errors)) << "input " << i << " overran its buffer";
  }
  // The generator must really exercise both outcomes, or the test proves nothing.
  EXPECT_GT(frames, kInputs / 10);
  EXPECT_GT(errors, kInputs / 10);
}

}  // namespace
}  // namespace clutch::ipc
