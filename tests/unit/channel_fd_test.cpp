// Descriptors travelling with frames (the shared-payload path): each arrives with its own frame,
// in order, however many go in one loop turn (more than the kernel takes in one sendmsg) and
// however the bytes are split; a frame that claims a descriptor it did not bring is a protocol
// error; none leaks.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "ipc/channel.hpp"
#include "ipc/frame.hpp"
#include "ipc/shared_payload.hpp"

namespace clutch::ipc {
namespace {

std::size_t open_fds() {
  std::size_t n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n;
}

int memfd_with(const std::string& text) {
  int fd = memfd_create("channel-fd-test", MFD_CLOEXEC);
  EXPECT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  return fd;
}

std::string read_fd(int fd) {
  char buf[64] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

FrameHeader header(uint64_t seq, bool shared) {
  FrameHeader h;
  h.kind = FrameKind::kMessage;
  h.id = seq;
  if (shared) h.flags = kFlagSharedPayload;
  return h;
}

TEST(ChannelFds, EachDescriptorArrivesWithItsFrameInOrder) {
  std::size_t fds_before = open_fds();
  {
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    asio::io_context io;
    auto sender = std::make_shared<Channel>(io, pair[0], 1 << 20);
    auto receiver = std::make_shared<Channel>(io, pair[1], 1 << 20);
    constexpr uint64_t kFrames = 3000;
    uint64_t received = 0, shared = 0, mismatched = 0, shared_sent = 0;
    std::string closed;
    receiver->start(
        [&](const FrameView& frame, std::byte*) {
          if (frame.header.id != received) ++mismatched;
          ++received;
          if (frame.header.flags & kFlagSharedPayload) {
            ++shared;
            if (read_fd(frame.fd) != "frame " + std::to_string(frame.header.id)) ++mismatched;
            if (read_shared_ref(frame).size != frame.header.id) ++mismatched;
          }
          if (received == kFrames) io.stop();
        },
        [&](const std::string& reason, bool) { closed = reason; });
    sender->start([](const FrameView&, std::byte*) {}, [](const std::string&, bool) {});
    // The first 600 in one turn: more descriptors than one sendmsg carries (253). Then a mix,
    // with payloads large enough that frames straddle reads.
    for (uint64_t seq = 0; seq < kFrames; ++seq) {
      bool is_shared = seq < 600 || seq % 7 == 0;
      if (is_shared) {
        ++shared_sent;
        sender->attach_fd(memfd_with("frame " + std::to_string(seq)));
        sender->send(header(seq, true), "big", encode_shared_ref(0, seq));
      } else {
        sender->send(header(seq, false), "small", std::string(seq % 50'000, 'x'));
      }
      if (seq >= 600 && seq % 100 == 0) io.poll();  // let some go out, so writes interleave
    }
    io.run_for(std::chrono::seconds(30));
    EXPECT_EQ(closed, "");
    EXPECT_EQ(received, kFrames);
    EXPECT_EQ(shared, shared_sent);
    EXPECT_EQ(mismatched, 0u);
    sender->close();
    receiver->close();
  }
  EXPECT_EQ(open_fds(), fds_before) << "a descriptor leaked";
}

TEST(ChannelFds, AFrameClaimingADescriptorItDidNotBringIsAProtocolError) {
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  asio::io_context io;
  auto sender = std::make_shared<Channel>(io, pair[0], 1 << 20);
  auto receiver = std::make_shared<Channel>(io, pair[1], 1 << 20);
  std::string closed;
  bool protocol = false;
  receiver->start([](const FrameView&, std::byte*) {},
                  [&](const std::string& reason, bool protocol_error) {
                    closed = reason;
                    protocol = protocol_error;
                    io.stop();
                  });
  sender->start([](const FrameView&, std::byte*) {}, [](const std::string&, bool) {});
  sender->send(header(1, true), "big", encode_shared_ref(0, 10));  // no attach_fd
  io.run_for(std::chrono::seconds(10));
  EXPECT_TRUE(protocol);
  EXPECT_NE(closed.find("without its descriptor"), std::string::npos) << closed;
}

TEST(ChannelFds, ASharedPayloadFrameMustCarryAReference) {
  std::vector<std::byte> buf;
  FrameHeader h = header(1, true);
  append_frame(buf, h, "big", "not sixteen");
  FrameHeader out;
  EXPECT_EQ(decode_header(buf, 1 << 20, out), DecodeStatus::kBadShared);
  buf.clear();
  append_frame(buf, h, "big", encode_shared_ref(0, 5), "key-1");
  ASSERT_EQ(decode_header(buf, 1 << 20, out), DecodeStatus::kOk);
  FrameView view = view_frame(out, buf.data());
  EXPECT_EQ(view.key, "key-1");
  stamp_shared_token(buf.data(), view, 42);
  EXPECT_EQ(read_shared_ref(view_frame(out, buf.data())).token, 42u);
  EXPECT_EQ(read_shared_ref(view).size, 5u);
}

TEST(SharedPayload, APoolReusesARegionOnceItIsGivenBackAndReadersSeeEachPayload) {
  PayloadPool pool;
  std::string first(200'000, 'a'), second(150'000, 'b');
  PayloadPool::Lent one = pool.lend(first);
  ASSERT_GE(one.fd, 0);
  EXPECT_EQ(check_shared_payload(one.fd, first.size(), 1 << 20), "");
  // Sealed against shrinking: a reader's mapping can never be cut short under it.
  EXPECT_NE(ftruncate(one.fd, 10), 0);
  PayloadMappings mappings;
  {
    PayloadMappings::View mapped = mappings.view(one.fd, first.size(), 1 << 20);
    EXPECT_EQ(mapped.error, "");
    EXPECT_EQ(mapped.bytes, first);
    mappings.trim();
  }
  // Not given back yet: the next payload gets a region of its own.
  PayloadPool::Lent two = pool.lend(second);
  struct stat a {
  }, b{};
  fstat(one.fd, &a);
  fstat(two.fd, &b);
  EXPECT_NE(a.st_ino, b.st_ino);
  pool.give_back(one.seq);
  EXPECT_EQ(pool.free_regions(), 1u);
  // Given back: the same pages carry the next payload.
  PayloadPool::Lent three = pool.lend(second);
  struct stat c {};
  fstat(three.fd, &c);
  EXPECT_EQ(c.st_ino, a.st_ino);
  // The reader's kept mapping of that region shows the new payload, without mapping it again.
  EXPECT_EQ(mappings.view(three.fd, second.size(), 1 << 20).bytes, second);
  EXPECT_EQ(mappings.kept(), 1u);
  mappings.trim();
  EXPECT_NE(check_shared_payload(three.fd, static_cast<uint64_t>(c.st_size) + 1, 1 << 20)
                .find("frame says"),
            std::string::npos);
  EXPECT_NE(check_shared_payload(three.fd, second.size(), 1000).find("over max_message_size"),
            std::string::npos);
  pool.give_back(12345);  // unknown: ignored
  for (int fd : {one.fd, two.fd, three.fd}) ::close(fd);
}

TEST(SharedPayload, AnUnsealedOrForeignDescriptorIsRefused) {
  int unsealed = memfd_with("changeable");
  EXPECT_NE(check_shared_payload(unsealed, 10, 1 << 20).find("not sealed"), std::string::npos);
  PayloadMappings mappings;
  PayloadMappings::View mapped = mappings.view(unsealed, 10, 1 << 20);
  EXPECT_NE(mapped.error, "");
  EXPECT_TRUE(mapped.bytes.empty());
  EXPECT_EQ(mappings.kept(), 0u);
  ::close(unsealed);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  EXPECT_NE(check_shared_payload(pipe_fds[0], 0, 1 << 20).find("not a memfd"), std::string::npos);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

TEST(SharedPayload, AReaderKeepsBoundedMappingsAndRemapsARegionThatGrew) {
  PayloadPool pool;
  PayloadMappings mappings;
  // Each region lent while the others are still out: kMaxKept + 2 regions of their own.
  std::vector<PayloadPool::Lent> lent;
  for (std::size_t i = 0; i < PayloadMappings::kMaxKept + 2; ++i) {
    std::string bytes(100'000 + i, static_cast<char>('a' + i));
    lent.push_back(pool.lend(bytes));
    ASSERT_GE(lent.back().fd, 0);
    EXPECT_EQ(mappings.view(lent.back().fd, bytes.size(), 1 << 20).bytes, bytes);
    mappings.trim();
  }
  EXPECT_EQ(mappings.kept(), PayloadMappings::kMaxKept);
  // The region grows under a kept mapping: it is mapped again, and the larger payload read whole.
  pool.give_back(lent.back().seq);
  std::string larger(600'000, 'z');
  PayloadPool::Lent grown = pool.lend(larger);
  struct stat a {
  }, b{};
  fstat(lent.back().fd, &a);
  fstat(grown.fd, &b);
  ASSERT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(mappings.view(grown.fd, larger.size(), 1 << 20).bytes, larger);
  mappings.trim();
  EXPECT_EQ(mappings.kept(), PayloadMappings::kMaxKept);
  EXPECT_LE(mappings.kept_bytes(), PayloadMappings::kMaxKeptBytes);
  // Past kMaxKeptBytes, mappings go least recently used first; one larger than that is not kept.
  std::string huge(PayloadMappings::kMaxKeptBytes + 1, 'h');
  PayloadPool::Lent big = pool.lend(huge);
  EXPECT_EQ(mappings.view(big.fd, huge.size(), huge.size()).bytes.size(), huge.size());
  mappings.trim();
  EXPECT_EQ(mappings.kept(), 0u);
  EXPECT_EQ(mappings.kept_bytes(), 0u);
  for (auto& l : lent) ::close(l.fd);
  ::close(grown.fd);
  ::close(big.fd);
}

}  // namespace
}  // namespace clutch::ipc
