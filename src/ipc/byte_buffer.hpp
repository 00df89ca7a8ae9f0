// A growable byte buffer that, unlike std::vector, does not zero what it grows into and keeps its
// memory across clear(): the messenger's output buffers are refilled every loop turn, and zeroing
// or re-faulting fresh pages each time cost more than the copies themselves.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <utility>

namespace clutch::ipc {

class ByteBuffer {
 public:
  std::byte* data() { return data_.get(); }
  const std::byte* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  void clear() { size_ = 0; }

  // Sets the size; new bytes are uninitialized.
  void resize(std::size_t size) {
    if (size > capacity_) grow(size);
    size_ = size;
  }
  void append(const std::byte* bytes, std::size_t n) {
    std::size_t at = size_;
    resize(size_ + n);
    if (n > 0) std::memcpy(data_.get() + at, bytes, n);
  }
  // Returns the memory to the allocator when a burst left more than `keep` bytes reserved.
  void trim(std::size_t keep) {
    if (size_ == 0 && capacity_ > keep) {
      data_.reset();
      capacity_ = 0;
    }
  }
  // Replaces the memory with `size` fresh, untouched bytes (content dropped): the kernel only
  // backs pages once they are written, so an idle channel's buffer costs no resident memory.
  void reset(std::size_t size) {
    data_.reset(new std::byte[size]);
    size_ = capacity_ = size;
  }
  void swap(ByteBuffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
  }

 private:
  void grow(std::size_t needed) {
    std::size_t capacity = capacity_ == 0 ? 4096 : capacity_;
    while (capacity < needed) capacity *= 2;
    std::unique_ptr<std::byte[]> bigger(new std::byte[capacity]);
    if (size_ > 0) std::memcpy(bigger.get(), data_.get(), size_);
    data_ = std::move(bigger);
    capacity_ = capacity;
  }

  std::unique_ptr<std::byte[]> data_;
  std::size_t size_ = 0, capacity_ = 0;
};

}  // namespace clutch::ipc
