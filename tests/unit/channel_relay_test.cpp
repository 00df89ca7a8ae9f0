// The master's relay path in miniature: frames read by one Channel are handed to another with
// send_borrowed (written from the reader's buffer, or copied when the output is busy) and must come
// out whole, in order and unchanged, whatever the mix of sizes and however slowly the far end
// reads.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ipc/byte_buffer.hpp"
#include "ipc/channel.hpp"
#include "ipc/frame.hpp"
#include "messaging/wire.hpp"

namespace clutch::ipc {
namespace {

std::string payload_for(uint64_t seq, std::size_t size) {
  std::string p(size, '\0');
  for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<char>((seq * 131 + i * 7) & 0xff);
  return p;
}

bool write_all(int fd, const std::byte* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n <= 0) return false;  // timed out: the relay stopped reading
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

TEST(ChannelRelay, BorrowedAndCopiedFramesArriveWholeAndInOrder) {
  constexpr uint64_t kFrames = 3000;
  int in[2], out[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, in), 0);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, out), 0);
  timeval five_seconds{5, 0};  // a relay that stops sending fails the test instead of hanging it
  setsockopt(out[1], SOL_SOCKET, SO_RCVTIMEO, &five_seconds, sizeof five_seconds);
  setsockopt(in[0], SOL_SOCKET, SO_SNDTIMEO, &five_seconds, sizeof five_seconds);

  asio::io_context io;
  auto reader = std::make_shared<Channel>(io, in[1], 1 << 20);
  auto writer = std::make_shared<Channel>(io, out[0], 1 << 20);
  std::size_t borrowed = 0, copied = 0;
  reader->start(
      [&](const FrameView& frame, std::byte* raw) {
        if (writer->send_borrowed(raw, frame.header.frame_size())) {
          ++borrowed;
        } else {
          ++copied;
        }
      },
      [](const std::string&, bool) {});
  reader->on_batch_end([&] { writer->commit_borrowed(); });
  writer->start([](const FrameView&, std::byte*) {}, [](const std::string&, bool) {});

  // Producer: sizes from empty to 40 KiB, sent in odd-sized writes so frames straddle reads.
  std::thread producer([&] {
    std::mt19937_64 rng(7);
    ByteBuffer all;
    for (uint64_t seq = 0; seq < kFrames; ++seq) {
      // A first third of large frames only (the output stays idle, so they are written from the
      // reader's buffer), then a mix where small frames force the borrowed ones to be copied.
      std::size_t size = seq < kFrames / 3 ? 2048 + rng() % 38000
                         : rng() % 4 == 0  ? rng() % 40000
                                           : rng() % 6000;
      FrameHeader h;
      h.kind = FrameKind::kMessage;
      messaging::set_route(h, messaging::Route::kRandom);
      h.id = seq;
      append_frame(all, h, "a", payload_for(seq, size));
    }
    std::size_t at = 0;
    while (at < all.size()) {
      std::size_t chunk = std::min<std::size_t>(all.size() - at, 1 + rng() % 70000);
      if (!write_all(in[0], all.data() + at, chunk)) return;
      at += chunk;
    }
  });

  // Consumer: reads slowly at times, so the writer's socket fills and it must copy the rest.
  std::atomic<bool> done{false};
  std::string failure;
  std::thread consumer([&] {
    std::vector<std::byte> buf;
    uint64_t expect = 0;
    std::byte chunk[65536];
    for (int reads = 0; expect < kFrames && reads < 1000000; ++reads) {
      if (reads % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      ssize_t n = ::read(out[1], chunk, sizeof chunk);
      if (n <= 0) break;
      buf.insert(buf.end(), chunk, chunk + n);
      std::size_t at = 0;
      FrameHeader h;
      DecodeStatus status;
      while ((status = decode_header(std::span(buf).subspan(at), 1 << 20, h)) ==
             DecodeStatus::kOk) {
        FrameView v = view_frame(h, buf.data() + at);
        if (h.id != expect || v.action != "a" ||
            v.payload != payload_for(expect, h.payload_length)) {
          failure = "frame " + std::to_string(expect) + " arrived wrong (got id " +
                    std::to_string(h.id) + ")";
          done = true;
          return;
        }
        ++expect;
        at += h.frame_size();
      }
      if (status != DecodeStatus::kNeedMore) {
        failure = "undecodable bytes after frame " + std::to_string(expect);
        break;
      }
      buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(at));
    }
    if (expect != kFrames && failure.empty())
      failure = "only " + std::to_string(expect) + " frames arrived";
    done = true;
  });

  for (int turn = 0; turn < 60000 && !done; ++turn) io.run_for(std::chrono::milliseconds(1));
  producer.join();
  consumer.join();
  EXPECT_EQ(failure, "");
  EXPECT_GT(borrowed, 0u) << "no frame was borrowed";
  EXPECT_GT(writer->zero_copy_bytes(), 0u) << "nothing was written from the reader's buffer";
  EXPECT_GT(copied, 0u) << "the copy path was never taken";
  ::close(in[0]);
  ::close(out[1]);
}

// A round trip through the master is four of these hops: each must cost one loop turn, not a
// turn to read, one to handle and one more to write.
TEST(ChannelRelay, AFrameRelayedWhileHandingOutIsWrittenInTheTurnThatReadIt) {
  int in[2], out[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, in), 0);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, out), 0);
  asio::io_context io;
  auto reader = std::make_shared<Channel>(io, in[1], 1 << 20);
  auto writer = std::make_shared<Channel>(io, out[0], 1 << 20);
  int relayed = 0;
  reader->start(
      [&](const FrameView& frame, std::byte*) {
        writer->send(frame.header, frame.action, frame.payload);
        ++relayed;
      },
      [](const std::string&, bool) {});
  writer->start([](const FrameView&, std::byte*) {}, [](const std::string&, bool) {});

  for (uint64_t seq = 0; seq < 3; ++seq) {
    FrameHeader h;
    h.kind = FrameKind::kMessage;
    h.id = seq;
    ByteBuffer frame;
    append_frame(frame, h, "hop", payload_for(seq, 100));
    ASSERT_TRUE(write_all(in[0], frame.data(), frame.size()));
    // Run handlers one at a time until the frame is relayed (the first one reads it; later ones
    // wait for the socket, which is a handler too)...
    for (int turn = 0; turn < 100 && relayed == static_cast<int>(seq); ++turn) {
      io.run_one_for(std::chrono::milliseconds(100));
    }
    ASSERT_EQ(relayed, static_cast<int>(seq + 1)) << "frame " << seq << " was not handed out";
    // ... and the relayed copy must already be on the far socket, no further handler run.
    std::byte got[4096];
    ssize_t n = ::recv(out[1], got, sizeof got, MSG_DONTWAIT);
    ASSERT_EQ(n, static_cast<ssize_t>(frame.size()))
        << "frame " << seq << " waits for another turn";
    FrameHeader back;
    ASSERT_EQ(
        decode_header(std::span<const std::byte>(got, static_cast<std::size_t>(n)), 1 << 20, back),
        DecodeStatus::kOk);
    EXPECT_EQ(back.id, seq);
  }
  reader->close();
  writer->close();
  ::close(in[0]);
  ::close(out[1]);
}

}  // namespace
}  // namespace clutch::ipc
