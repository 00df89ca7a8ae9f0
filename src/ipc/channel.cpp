#include "ipc/channel.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <cstring>

namespace clutch::ipc {
namespace {
constexpr std::size_t kReadChunk = 256 * 1024;
// Below this a frame is copied: one more iovec costs about what copying a few KiB does.
constexpr std::size_t kBorrowMin = 2048;
constexpr std::size_t kMaxBorrowed = 512;  // iovecs per commit, under IOV_MAX (1024)
// Descriptors per sendmsg: the kernel's SCM_MAX_FD.
constexpr std::size_t kMaxFdsPerWrite = 253;
// Descriptors received ahead of their frames; more means a peer sends them for nothing.
constexpr std::size_t kMaxUnclaimedFds = 1024;

void close_all(auto& fds) {
  for (int fd : fds) ::close(fd);
  fds.clear();
}

// A read that found nothing to read now (as opposed to end of stream or an error).
bool would_block(ssize_t n) {
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

// While a channel hands out frames, the output they cause (the master relaying them, a child
// answering them) is written when the outermost hand-out ends rather than on a posted turn: one
// loop turn and one epoll_wait less per relayed frame, with the same coalescing per batch.
thread_local int t_handing_out = 0;
thread_local std::vector<std::shared_ptr<Channel>> t_flush_after_hand_out;
}  // namespace

struct Channel::HandOut {
  HandOut() { ++t_handing_out; }
  ~HandOut() {
    if (--t_handing_out > 0) return;
    // No hand-out runs now, so whatever these flushes queue again is posted, not listed here.
    auto channels = std::move(t_flush_after_hand_out);
    t_flush_after_hand_out.clear();
    for (auto& channel : channels) {
      channel->flush_posted_ = false;
      channel->flush();
    }
  }
};

Channel::Channel(asio::io_context& io, int fd, std::size_t max_payload)
    : socket_(io), max_payload_(max_payload) {
  in_.reset(kReadChunk);
  socket_.assign(asio::local::stream_protocol(), fd);
  socket_.non_blocking(true);
}

Channel::~Channel() {
  asio::error_code ignored;
  socket_.close(ignored);
}

void Channel::start(FrameFn on_frame, CloseFn on_close) {
  on_frame_ = std::move(on_frame);
  on_close_ = std::move(on_close);
  read_more();
}

void Channel::make_room() {
  if (in_end_ < in_.size()) return;
  // No room left: the frame being assembled is bigger than the buffer's free tail.
  if (in_begin_ > 0) {
    std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
    in_end_ -= in_begin_;
    in_begin_ = 0;
  }
  if (in_end_ == in_.size()) in_.resize(in_.size() * 2);
}

void Channel::read_more() {
  if (reading_ || paused_ || closed_) return;
  make_room();
  reading_ = true;
  // Read at once (like Asio's speculative read) and handle the bytes on the next turn, so that a
  // peer that keeps this channel full shares the loop with the others; wait for the socket only
  // once it is drained (its readiness is edge-triggered).
  ssize_t n = receive_some();
  if (n > 0) {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->reading_ = false;
      if (self->closed_) return;
      self->process_input();
      self->read_more();
    });
    return;
  }
  if (!would_block(n)) {
    std::string why = n == 0 ? "peer closed the channel" : std::strerror(errno);
    asio::post(socket_.get_executor(), [self = shared_from_this(), why] {
      self->reading_ = false;
      self->fail(why, false);
    });
    return;
  }
  wait_readable();
}

void Channel::wait_readable() {
  reading_ = true;
  socket_.async_wait(asio::socket_base::wait_read,
                     [self = shared_from_this()](const asio::error_code& ec) {
                       self->reading_ = false;
                       if (self->closed_) return;
                       if (ec) return self->fail(ec.message(), false);
                       self->on_readable();
                     });
}

// The wait for the socket already cost a loop turn: its bytes are read and handed out in this
// one. A read that did not fill the room left drained the socket (or stopped at a boundary the
// kernel keeps before a message with descriptors, which the next wait reports at once): wait
// again, without the read that would only say EAGAIN. One that filled it reads on (next turn).
void Channel::on_readable() {
  if (paused_ || closed_) return;
  make_room();
  std::size_t room = in_.size() - in_end_;
  ssize_t n = receive_some();
  if (would_block(n)) return wait_readable();
  if (n <= 0) return fail(n == 0 ? "peer closed the channel" : std::strerror(errno), false);
  process_input();
  if (closed_ || paused_) return;
  if (static_cast<std::size_t>(n) < room)
    wait_readable();
  else
    read_more();
}

ssize_t Channel::receive_some() {
  iovec iov{in_.data() + in_end_, in_.size() - in_end_};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerWrite)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = ::recvmsg(socket_.native_handle(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      in_fds_.push_back(fd);
    }
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0 || in_fds_.size() > kMaxUnclaimedFds) {
    // More descriptors than any frame claims: a broken or hostile peer. Checked after taking
    // them, so that none leaks.
    errno = EPROTO;
    return -1;
  }
  in_end_ += static_cast<std::size_t>(n);
  return n;
}

namespace {
// A coarse clock (a few ms resolution, a few ns a read): read once per frame in children.
std::chrono::milliseconds coarse_now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::chrono::milliseconds(int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000);
}
}  // namespace

std::chrono::milliseconds Channel::coarse_clock() {
  return coarse_now();
}

std::chrono::milliseconds Channel::incomplete_for(std::chrono::milliseconds now) const {
  if (incomplete_mark_ != frames_in_ || in_begin_ == in_end_ || closed_) {
    return std::chrono::milliseconds(0);
  }
  return std::max(now - incomplete_since_, std::chrono::milliseconds(1));
}

void Channel::process_input() {
  HandOut hand_out;
  std::chrono::milliseconds deadline =
      turn_budget_.count() > 0 ? coarse_now() + turn_budget_ : std::chrono::milliseconds(0);
  while (!closed_ && !paused_ && in_begin_ < in_end_) {
    if (deadline.count() > 0 && coarse_now() >= deadline) {
      // Out of budget: the rest waits one loop turn (the frames stay where they are).
      end_batch();
      if (!continue_posted_) {
        continue_posted_ = true;
        asio::post(socket_.get_executor(), [self = shared_from_this()] {
          self->continue_posted_ = false;
          self->process_input();
          self->read_more();
        });
      }
      return;
    }
    FrameHeader header;
    auto available = std::span<const std::byte>(in_.data() + in_begin_, in_end_ - in_begin_);
    DecodeStatus status = decode_header(available, max_payload_, header);
    if (status == DecodeStatus::kNeedMore) {
      // Make sure a large frame will fit once it has fully arrived.
      std::size_t need = available.size() >= kHeaderSize ? header.frame_size() : kHeaderSize;
      if (incomplete_mark_ != frames_in_) {
        incomplete_mark_ = frames_in_;
        incomplete_since_ = coarse_now();
      }
      incomplete_size_ = need;
      end_batch();  // the frames handed out are about to move
      // A read in progress writes at in_end_ of this very buffer: nothing may move or be
      // reallocated under it. Its completion comes back here, and compacts then.
      if (reading_) return;
      if (in_begin_ > 0) {
        std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
        in_end_ -= in_begin_;
        in_begin_ = 0;
      }
      if (need > in_.size()) in_.resize(need);
      return;
    }
    if (status != DecodeStatus::kOk) {
      fail(std::string(to_string(status)), true);
      return;
    }
    std::byte* raw = in_.data() + in_begin_;
    FrameView view = view_frame(header, raw);
    if (header.flags & kFlagSharedPayload) {
      if (in_fds_.empty()) {
        fail("a shared-payload frame came without its descriptor", true);
        return;
      }
      view.fd = in_fds_.front();
      in_fds_.pop_front();
    }
    in_begin_ += header.frame_size();
    ++frames_in_;
    on_frame_(view, raw);
    if (view.fd >= 0) ::close(view.fd);
  }
  end_batch();
  if (in_begin_ == in_end_ && !reading_) {
    in_begin_ = in_end_ = 0;
    // Give back the memory of a one-off huge frame.
    if (in_.size() > kReadChunk) in_.reset(kReadChunk);
  }
}

void Channel::read_pending_now() {
  paused_ = false;
  for (int turn = 0; turn < 4096 && !closed_; ++turn) {
    if (in_end_ == in_.size()) in_.resize(in_.size() * 2);
    if (receive_some() <= 0) break;
    process_input();
  }
}

void Channel::resume_reading() {
  if (!paused_) return;
  paused_ = false;
  // Frames already buffered are handled before any new read, on a fresh loop turn.
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->process_input();
    self->read_more();
  });
}

void Channel::send(const FrameHeader& header, std::string_view action, std::string_view payload,
                   std::string_view key) {
  append_frame(output(), header, action, payload, key);
  flush_soon();
}

void Channel::attach_fd(int fd, std::size_t holds_bytes) {
  if (closed_) {
    ::close(fd);
    return;
  }
  output();  // borrowed frames first: they go before this descriptor's frame
  out_fds_.push_back(fd);
  held_bytes_ += holds_bytes;
}

void Channel::release_held_bytes(std::size_t bytes) {
  held_bytes_ -= std::min(bytes, held_bytes_);
  notify_drain_if_low();
}

bool Channel::send_borrowed(const std::byte* frame, std::size_t size) {
  if (closed_) return false;
  // Borrow only at the head of the output: anything queued or being written must go first.
  bool borrow =
      size >= kBorrowMin && out_.empty() && !writing_active_ && borrowed_.size() < kMaxBorrowed;
  if (!borrow) {
    output().append(frame, size);
    flush_soon();
    return false;
  }
  auto* base = const_cast<std::byte*>(frame);
  if (!borrowed_.empty() &&
      static_cast<std::byte*>(borrowed_.back().iov_base) + borrowed_.back().iov_len == base) {
    borrowed_.back().iov_len += size;  // adjacent in the sender's buffer: one iovec
  } else {
    borrowed_.push_back(iovec{base, size});
  }
  borrowed_bytes_ += size;
  return true;
}

void Channel::commit_borrowed() {
  if (borrowed_.empty()) return;
  if (closed_) {
    borrowed_.clear();
    borrowed_bytes_ = 0;
    return;
  }
  msghdr msg{};
  msg.msg_iov = borrowed_.data();
  msg.msg_iovlen = borrowed_.size();
  ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  // Whatever the socket did not take (full, or an error the next write will report) is copied.
  std::size_t written = n > 0 ? static_cast<std::size_t>(n) : 0;
  zero_copy_bytes_ += written;
  for (const iovec& v : borrowed_) {
    std::size_t sent = std::min(written, v.iov_len);
    written -= sent;
    if (sent < v.iov_len) {
      out_.append(static_cast<const std::byte*>(v.iov_base) + sent, v.iov_len - sent);
    }
  }
  borrowed_.clear();
  borrowed_bytes_ = 0;
  if (!out_.empty()) flush_soon();
}

void Channel::materialize_borrowed() {
  for (const iovec& v : borrowed_) {
    out_.append(static_cast<const std::byte*>(v.iov_base), v.iov_len);
  }
  borrowed_.clear();
  borrowed_bytes_ = 0;
  flush_soon();
}

void Channel::flush_soon() {
  if (flush_posted_ || closed_) return;
  flush_posted_ = true;
  if (t_handing_out > 0) {
    t_flush_after_hand_out.push_back(shared_from_this());
    return;
  }
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->flush_posted_ = false;
    self->flush();
  });
}

void Channel::flush() {
  if (writing_active_ || closed_ || out_.empty()) return;
  writing_.swap(out_);
  out_.clear();
  out_.trim(std::size_t{32} << 20);
  writing_fds_.swap(out_fds_);
  written_ = 0;
  writing_active_ = true;
  write_some();
}

// One sendmsg of what is left of writing_. Descriptors go with the first bytes (at most
// kMaxFdsPerWrite per sendmsg; with more, one byte carries each group), so that each arrives no
// later than its frame. Returns what sendmsg did: bytes written, or -1 with errno.
ssize_t Channel::send_step() {
  std::size_t fds = std::min(writing_fds_.size(), kMaxFdsPerWrite);
  std::size_t length = writing_.size() - written_;
  if (writing_fds_.size() > kMaxFdsPerWrite) length = 1;
  iovec iov{writing_.data() + written_, length};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerWrite)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds);
    std::memcpy(CMSG_DATA(c), writing_fds_.data(), sizeof(int) * fds);
  }
  ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n > 0) {
    written_ += static_cast<std::size_t>(n);
    // Sent: the kernel holds its own references until the peer reads them.
    for (std::size_t i = 0; i < fds; ++i) ::close(writing_fds_[i]);
    writing_fds_.erase(writing_fds_.begin(), writing_fds_.begin() + static_cast<long>(fds));
  }
  return n;
}

// Writes what it can now; waits for the socket if it is full.
void Channel::write_some() {
  while (written_ < writing_.size()) {
    ssize_t n = send_step();
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      socket_.async_wait(asio::socket_base::wait_write,
                         [self = shared_from_this()](const asio::error_code& ec) {
                           if (self->closed_) return;
                           if (ec) return self->fail("write failed: " + ec.message(), false);
                           self->write_some();
                         });
      return;
    }
    std::string why = n == 0 ? "wrote nothing" : std::strerror(errno);
    asio::post(socket_.get_executor(),
               [self = shared_from_this(), why] { self->fail("write failed: " + why, false); });
    return;
  }
  // Done. Whoever waits for the output to drain hears of it on the next turn, as after an
  // asynchronous write (its callback must not run inside whatever called flush()); without one,
  // the write ends here rather than costing a loop turn per write.
  if (drain_wanted_) {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->write_done(); });
    return;
  }
  end_write();
  if (!out_.empty()) flush_soon();
}

void Channel::end_write() {
  writing_active_ = false;
  writing_.clear();
  written_ = 0;
  // Keep the buffer for the next turns (refaulting fresh pages is what costs); give back only
  // what a one-off huge message left behind.
  writing_.trim(std::size_t{32} << 20);
}

void Channel::write_done() {
  if (closed_) {
    writing_active_ = false;
    return;
  }
  end_write();
  flush();
  notify_drain_if_low();
}

void Channel::wait_for_drain() {
  if (drain_wanted_) return;
  drain_wanted_ = true;
  if (!writing_active_) {
    asio::post(socket_.get_executor(),
               [self = shared_from_this()] { self->notify_drain_if_low(); });
  }
}

void Channel::notify_drain_if_low() {
  if (!drain_wanted_ || closed_ || pending_output() >= high_water_ / 2) return;
  drain_wanted_ = false;
  if (on_drain_) on_drain_();
}

void Channel::fail(const std::string& reason, bool protocol_error) {
  if (closed_) return;
  close();
  if (on_close_) {
    auto fn = std::move(on_close_);
    fn(reason, protocol_error);
  }
}

void Channel::close() {
  if (closed_) return;
  closed_ = true;
  close_all(in_fds_);
  close_all(out_fds_);
  close_all(writing_fds_);
  asio::error_code ignored;
  socket_.cancel(ignored);
  socket_.close(ignored);
}

void Channel::flush_blocking_and_close() {
  if (closed_) return;
  // An async write may be half done; only write when nothing is in flight.
  if (!writing_active_ && !out_.empty()) {
    writing_.swap(out_);
    writing_fds_.swap(out_fds_);
    written_ = 0;
    int fd = socket_.native_handle();
    for (int turn = 0; turn < 4096 && written_ < writing_.size(); ++turn) {
      ssize_t n = send_step();
      if (n > 0 || (n < 0 && errno == EINTR)) continue;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) break;
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 1000) <= 0) break;  // the master is not reading: give up
    }
  }
  close();
}

}  // namespace clutch::ipc
