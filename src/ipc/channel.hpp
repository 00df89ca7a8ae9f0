// One end of a messenger socketpair on an Asio loop: reads in large chunks and hands out whole
// frames, and gathers outgoing frames in a buffer that is flushed once per loop turn with a single
// write. Nothing here knows about roles or routing.
#pragma once

#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>

#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ipc/byte_buffer.hpp"
#include "ipc/frame.hpp"

namespace clutch::ipc {

class Channel : public std::enable_shared_from_this<Channel> {
 public:
  // Called once per whole frame; `raw` points at the frame's first byte in the read buffer and may
  // be modified in place (the master stamps the sender) until the callback returns.
  using FrameFn = std::function<void(const FrameView& frame, std::byte* raw)>;
  // Called once when the channel ends: peer closed, I/O error, or a bad frame (`reason` says
  // which).
  using CloseFn = std::function<void(const std::string& reason, bool protocol_error)>;
  // Called when the pending output has fallen below the low-water mark (half the high-water mark)
  // after someone waited for it with wait_for_drain().
  using DrainFn = std::function<void()>;

  // Takes ownership of `fd`, a connected AF_UNIX stream socket.
  Channel(asio::io_context& io, int fd, std::size_t max_payload);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  void start(FrameFn on_frame, CloseFn on_close);
  void on_drain(DrainFn fn) { on_drain_ = std::move(fn); }
  // Called whenever the frames handed out so far are about to be overwritten in the read buffer:
  // the last chance to commit what other channels borrowed from it.
  void on_batch_end(std::function<void()> fn) { on_batch_end_ = std::move(fn); }

  // The buffer outgoing frames are appended to; call flush_soon() after appending. Borrowed
  // frames queued before are copied in first, so the order of frames is kept.
  ByteBuffer& output() {
    if (!borrowed_.empty()) materialize_borrowed();
    return out_;
  }
  // Queues a whole frame that lives in another channel's read buffer without copying it, when
  // that is worth it (a large frame and an idle output); copies it otherwise. The bytes must stay
  // put until commit_borrowed(), which the owner of that buffer triggers from its batch-end hook.
  // Returns whether it borrowed (and so needs the commit).
  bool send_borrowed(const std::byte* frame, std::size_t size);
  // Writes the borrowed frames now (non-blocking) and copies whatever the socket did not take.
  void commit_borrowed();
  bool borrowing() const { return !borrowed_.empty(); }
  // Bytes written straight from a borrowed buffer so far (the copies the relay saved).
  std::size_t zero_copy_bytes() const { return zero_copy_bytes_; }
  // Appends a frame and schedules the flush.
  void send(const FrameHeader& header, std::string_view action, std::string_view payload,
            std::string_view key = {});
  // Queues `fd` (ownership taken) to travel with the next frame appended to output(): the
  // receiver's channel hands it out with that frame. Descriptors and their frames must be queued
  // in the same order; they leave with the first write that carries any of the frames' bytes.
  // `holds_bytes` (a shared payload's size) counts as pending output until the peer says it has
  // read them (release_held_bytes): a peer that does not read must fill its queue with large
  // messages as it would with inline ones, or memory would grow behind a hung receiver.
  void attach_fd(int fd, std::size_t holds_bytes = 0);
  void release_held_bytes(std::size_t bytes);
  // Writes everything appended so far at the end of this loop turn (coalescing many frames).
  void flush_soon();
  // Writes now without waiting for the end of the loop turn.
  void flush();
  std::size_t pending_output() const {
    return out_.size() + writing_.size() + borrowed_bytes_ + held_bytes_;
  }
  bool over_high_water() const { return pending_output() > high_water_; }
  // Asks for one on_drain call once the pending output is below the low-water mark (at once, on
  // the loop, if it already is).
  void wait_for_drain();
  void set_high_water(std::size_t bytes) { high_water_ = bytes; }
  // Hands out frames for at most about `budget` per loop turn, then lets the loop turn (timers,
  // other sockets, the heartbeat) before going on: a backlog of slow handlers must not starve
  // the rest of the process or look like a hung loop. Off (0) by default; children set it.
  void set_turn_budget(std::chrono::milliseconds budget) { turn_budget_ = budget; }

  // Whole frames handed out so far: what proves the peer alive (bytes of a frame that never
  // completes prove nothing: a peer that wrote half a frame has its later frames read as the
  // rest of it).
  uint64_t frames_received() const { return frames_in_; }
  // How long the channel has held the start of a frame that has not fully arrived, with no whole
  // frame handed out since (0 if it holds none), and that frame's announced and received sizes.
  std::chrono::milliseconds incomplete_for(std::chrono::milliseconds now) const;
  std::size_t incomplete_size() const { return incomplete_size_; }
  std::size_t incomplete_received() const { return in_end_ - in_begin_; }
  // Counts an unfinished frame's time afresh from `now` (after a stall of the reader's own).
  void restart_incomplete_clock(std::chrono::milliseconds now) {
    if (incomplete_mark_ == frames_in_) incomplete_since_ = now;
  }
  // The coarse monotonic clock incomplete_for() is read against.
  static std::chrono::milliseconds coarse_clock();

  // Back-pressure: stop taking frames from the peer until resume_reading().
  void pause_reading() { paused_ = true; }
  void resume_reading();
  bool paused() const { return paused_; }

  // Reads and handles, synchronously, whatever the peer wrote before it died (e.g. its last words
  // before exiting), then returns; call close() right after.
  void read_pending_now();
  // Stops reading and writing at once; pending output is dropped.
  void close();
  bool closed() const { return closed_; }
  // Writes what is pending (blocking, bounded by the socket), then closes: for a clean exit.
  void flush_blocking_and_close();

 private:
  struct HandOut;  // the scope of a hand-out of frames (channel.cpp)
  void read_more();
  void make_room();
  void wait_readable();
  void on_readable();
  // One recvmsg into the read buffer, taking the descriptors that came with the bytes: >0 bytes
  // read, 0 at end of stream, -1 with errno.
  ssize_t receive_some();
  ssize_t send_step();
  void write_some();
  void write_done();
  void end_write();
  void process_input();
  void fail(const std::string& reason, bool protocol_error);
  void notify_drain_if_low();
  void materialize_borrowed();
  void end_batch() {
    if (on_batch_end_) on_batch_end_();
  }

  asio::local::stream_protocol::socket socket_;
  std::size_t max_payload_;
  FrameFn on_frame_;
  CloseFn on_close_;
  DrainFn on_drain_;
  std::function<void()> on_batch_end_;
  std::vector<iovec> borrowed_;  // frames in another channel's read buffer, in order
  std::size_t borrowed_bytes_ = 0, zero_copy_bytes_ = 0;
  ByteBuffer in_;
  std::size_t in_begin_ = 0, in_end_ = 0;
  ByteBuffer out_, writing_;
  std::size_t written_ = 0;     // of writing_
  std::size_t held_bytes_ = 0;  // shared payloads sent and not yet read by the peer
  // Descriptors received and not yet claimed by their frames, oldest first; those queued for the
  // frames in out_, and those going with writing_ (sent with its first bytes).
  std::deque<int> in_fds_;
  std::vector<int> out_fds_, writing_fds_;
  std::size_t high_water_ = std::size_t{1} << 20;
  bool reading_ = false, writing_active_ = false, flush_posted_ = false;
  bool paused_ = false, closed_ = false, drain_wanted_ = false, continue_posted_ = false;
  std::chrono::milliseconds turn_budget_{0};
  uint64_t frames_in_ = 0;
  // Set when a frame is found incomplete: the frame count then (so a later whole frame ends the
  // episode without a store per frame), when, and the size it announced.
  uint64_t incomplete_mark_ = UINT64_MAX;
  std::chrono::milliseconds incomplete_since_{0};
  std::size_t incomplete_size_ = 0;
};

}  // namespace clutch::ipc
