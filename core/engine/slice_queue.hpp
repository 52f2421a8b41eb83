// A FIFO of byte slices that point into shard buffers: the unit of zero-copy forwarding.
// Must not depend on io_uring or on any protocol.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#include "core/assert.hpp"

namespace gh::engine {

using BufferId = uint32_t;

// A view of `length` bytes at `offset` inside buffer `buffer`. Each slice in a queue holds one
// reference on its buffer (see BufferPool::ref / unref).
struct Slice {
  BufferId buffer;
  uint32_t offset;
  uint32_t length;
};

// Ring of slices with power-of-two capacity, grown by doubling; no allocation while it has room.
// Idle connections keep an empty queue with no storage at all.
class SliceQueue {
 public:
  bool empty() const { return count_ == 0; }
  uint32_t count() const { return count_; }
  uint64_t bytes() const { return bytes_; }

  Slice& front() {
    GH_DASSERT(count_ > 0);
    return slots_[head_];
  }
  const Slice& at(uint32_t i) const {
    GH_DASSERT(i < count_);
    return slots_[(head_ + i) & (capacity_ - 1)];
  }

  void push_back(Slice s) {
    if (count_ == capacity_) grow();
    slots_[(head_ + count_) & (capacity_ - 1)] = s;
    ++count_;
    bytes_ += s.length;
  }
  Slice pop_front() {
    GH_DASSERT(count_ > 0);
    Slice s = slots_[head_];
    head_ = (head_ + 1) & (capacity_ - 1);
    --count_;
    bytes_ -= s.length;
    return s;
  }
  // Drops `n` bytes from the front slice, which must hold more than `n`.
  void trim_front(uint32_t n) {
    Slice& s = front();
    GH_DASSERT(n < s.length);
    s.offset += n;
    s.length -= n;
    bytes_ -= n;
  }
  // Shrinks the last slice by `n` bytes (used when a tail is taken back).
  Slice& back() {
    GH_DASSERT(count_ > 0);
    return slots_[(head_ + count_ - 1) & (capacity_ - 1)];
  }
  void grow_back(uint32_t n) {
    back().length += n;
    bytes_ += n;
  }
  // Releases the storage of an empty queue (idle connections hold no slice memory).
  void shrink_if_empty() {
    if (count_ == 0 && capacity_ > 0) {
      slots_.reset();
      capacity_ = 0;
      head_ = 0;
    }
  }

 private:
  static constexpr uint32_t kInitialCapacity = 8;

  void grow() {
    const uint32_t new_capacity = capacity_ == 0 ? kInitialCapacity : capacity_ * 2;
    auto fresh = std::make_unique<Slice[]>(new_capacity);
    for (uint32_t i = 0; i < count_; ++i) fresh[i] = slots_[(head_ + i) & (capacity_ - 1)];
    slots_ = std::move(fresh);
    capacity_ = new_capacity;
    head_ = 0;
  }

  std::unique_ptr<Slice[]> slots_;
  uint32_t capacity_ = 0;
  uint32_t head_ = 0;
  uint32_t count_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace gh::engine
