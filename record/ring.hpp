// Per-shard single-producer single-consumer byte ring carrying encoded records to the flusher.
// Lock-free (acquire/release only), allocated once; must not do I/O or allocate after create.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <type_traits>

#include "core/assert.hpp"
#include "core/error.hpp"
#include "record/doorbell.hpp"
#include "record/event.hpp"
#include "record/le.hpp"

namespace gh::rec {

enum class PushStatus : uint8_t {
  kPushed,
  // Not enough free space right now. Back-pressure: pause the producing connection and retry
  // after the flusher drained; never drop the event.
  kFull,
  // The entry can never fit (larger than capacity/2 or than limits::record_bytes_max, or not
  // encodable). The caller must shrink it: RecordText truncates statement text, and a caller
  // with huge values splits them over several events.
  kTooLarge,
};

// Entries are [u32 payload length][payload][zero padding to 8 bytes]. An entry never wraps:
// when it does not fit before the end, the producer writes kWrapMarker there and starts at 0.
// Limiting entries to capacity/2 guarantees that an empty ring always takes any allowed entry.
//
// Producer: exactly one thread (the shard) calls try_push*. Consumer: exactly one thread (the
// flusher) calls peek/release/drain. free_bytes(), used_bytes() are exact on the producer and
// consumer side respectively and approximate elsewhere.
class Ring {
 public:
  static constexpr size_t kEntryHeaderBytes = 4;
  static constexpr size_t kEntryAlignBytes = 8;
  static constexpr uint32_t kWrapMarker = 0xFFFF'FFFFu;

  // capacity_bytes: a power of two in [limits::ring_bytes_min, limits::ring_bytes_max].
  static Result<std::unique_ptr<Ring>> create(size_t capacity_bytes);
  explicit Ring(size_t capacity_bytes);  // asserts the bounds create() checks
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  size_t capacity() const { return capacity_; }
  size_t payload_bytes_max() const { return capacity_ / 2 - kEntryHeaderBytes; }

  // Producer. Serializes the record body (record/FORMAT.md) straight into the ring.
  [[nodiscard]] PushStatus try_push(const Event& event);
  // Producer. `write(std::span<std::byte>)` fills exactly `payload_bytes` bytes in place.
  template <class W>
  [[nodiscard]] PushStatus try_push_bytes(size_t payload_bytes, W&& write);
  size_t free_bytes() const;

  struct Peeked {
    uint64_t cursor = 0;  // pass to release() to free everything visited
    size_t entries = 0;
    size_t payload_bytes = 0;
  };
  // Consumer. Visits entries from the oldest without freeing them. `on_entry(std::span<const
  // std::byte>)` returns false to stop before that entry (it is visited again next time). Views
  // stay valid until release() passes them.
  template <class F>
  Peeked peek(F&& on_entry) const;
  // Consumer. Frees everything before `cursor`, which a peek() since the last release returned.
  void release(uint64_t cursor);
  // Consumer. peek + release of every visited entry; `on_entry` returns void.
  template <class F>
  size_t drain(F&& on_entry);
  size_t used_bytes() const;
  bool empty() const { return used_bytes() == 0; }

  // ---- durability (recording.durability: strict; record/FORMAT.md, "Durability") ----
  // Entries are numbered from 1 in push order; the flusher consumes them in that order, so one
  // number per side says how far each got.
  // Producer: the number of the last entry pushed (0 before the first).
  uint64_t pushed() const { return pushed_; }
  // Producer: the flusher should look now (a statement waits for its record to be durable).
  void request_durable() {
    if (doorbell_ != nullptr) doorbell_->ring();
  }
  // Producer, before it re-checks durability() and pauses: the flusher's next publish_* writes
  // durable_wake_fd(), which the shard polls (engine::ShardOptions::wake_fd), so a held statement
  // goes on as soon as its fdatasync returns rather than at the shard's next paused tick.
  void arm_durable_wake() { durable_wake_.prepare_sleep(); }
  int durable_wake_fd() const { return durable_wake_.fd(); }
  enum class Durability : uint8_t {
    kDurable,  // written and fdatasynced
    kWaiting,  // not yet
    kFailing,  // not yet, and writing fails right now (write_error() says why); may recover
    kLost,     // written, but the fdatasync that should have covered it failed: never durable
  };
  // Any thread: the state of entry `number` (1..pushed()). Durable is read before the lost
  // ranges: a durable mark published after a loss is seen together with that loss. An entry at
  // or below a loss no longer kept in detail counts as lost: it may have been in that range, and
  // a statement refused although recorded is better than one forwarded unrecorded.
  Durability durability(uint64_t number) const {
    const uint64_t durable = durable_.load(std::memory_order_acquire);
    const uint64_t losses = losses_.load(std::memory_order_acquire);
    for (uint64_t i = losses > kLostRangesMax ? losses - kLostRangesMax : 0; i < losses; ++i) {
      const LostRange& r = lost_[i % kLostRangesMax];
      if (number > r.after.load(std::memory_order_acquire) &&
          number <= r.through.load(std::memory_order_acquire)) {
        return Durability::kLost;
      }
    }
    if (number <= forgotten_lost_through_.load(std::memory_order_acquire)) return Durability::kLost;
    if (durable >= number) return Durability::kDurable;
    if (write_error_.load(std::memory_order_acquire) != 0) return Durability::kFailing;
    return Durability::kWaiting;
  }
  uint64_t durable() const { return durable_.load(std::memory_order_acquire); }
  int write_error() const { return write_error_.load(std::memory_order_acquire); }  // errno, 0: ok
  // Consumer: entries up to `number` are durable / (after, through] never will be / writing
  // fails with `error` (0: it works again).
  void publish_durable(uint64_t number) {
    durable_.store(number, std::memory_order_release);
    durable_wake_.ring();
  }
  void publish_lost(uint64_t after, uint64_t through) {
    const uint64_t losses = losses_.load(std::memory_order_relaxed);
    LostRange& r = lost_[losses % kLostRangesMax];
    if (losses >= kLostRangesMax) {  // the oldest range is overwritten: remember where it ended
      forgotten_lost_through_.store(r.through.load(std::memory_order_relaxed),
                                    std::memory_order_release);
    }
    r.after.store(after, std::memory_order_release);
    r.through.store(through, std::memory_order_release);
    losses_.store(losses + 1, std::memory_order_release);
    durable_wake_.ring();
  }
  void publish_write_error(int error) {
    if (write_error_.exchange(error, std::memory_order_acq_rel) != error) durable_wake_.ring();
  }
  void set_doorbell(Doorbell* doorbell) { doorbell_ = doorbell; }  // before the producer starts

 private:
  static constexpr size_t align_up(size_t n) {
    return (n + kEntryAlignBytes - 1) & ~(kEntryAlignBytes - 1);
  }

  const size_t capacity_;
  const size_t mask_;
  std::unique_ptr<std::byte[]> data_;
  // Each index on its own cache line, next to the side's cached copy of the other index.
  alignas(64) std::atomic<uint64_t> tail_{0};  // written by the producer only
  uint64_t head_cache_ = 0;                    // producer's last view of head_
  uint64_t pushed_ = 0;                        // producer only
  Doorbell* doorbell_ = nullptr;
  alignas(64) std::atomic<uint64_t> head_{0};  // written by the consumer only
  // Published by the consumer (the flusher) for the producer's held statements.
  // The newest losses in detail (a failed fdatasync each; at least retry_interval_ms apart), and
  // where the newest one no longer kept ended: losses come in entry order, so an entry at or below
  // it is reported lost (conservatively: it may have been durable; nobody waits that long).
  static constexpr size_t kLostRangesMax = 16;
  struct LostRange {
    std::atomic<uint64_t> after{0};
    std::atomic<uint64_t> through{0};
  };
  alignas(64) std::atomic<uint64_t> durable_{0};
  std::atomic<uint64_t> losses_{0};
  std::atomic<uint64_t> forgotten_lost_through_{0};
  std::atomic<int> write_error_{0};
  std::array<LostRange, kLostRangesMax> lost_{};
  Doorbell durable_wake_;  // rung by the consumer's publish_*, polled by the producer's shard
};

template <class W>
PushStatus Ring::try_push_bytes(size_t payload_bytes, W&& write) {
  if (payload_bytes > payload_bytes_max()) return PushStatus::kTooLarge;
  const size_t need = align_up(kEntryHeaderBytes + payload_bytes);
  const uint64_t tail = tail_.load(std::memory_order_relaxed);
  const size_t index = static_cast<size_t>(tail & mask_);
  const size_t to_end = capacity_ - index;
  const size_t total = need <= to_end ? need : to_end + need;
  if (capacity_ - (tail - head_cache_) < total) {
    head_cache_ = head_.load(std::memory_order_acquire);
    if (capacity_ - (tail - head_cache_) < total) return PushStatus::kFull;
  }
  size_t at = index;
  if (need > to_end) {
    // to_end >= 8 because entries and the capacity are multiples of 8.
    le::store<uint32_t>(data_.get() + index, kWrapMarker);
    at = 0;
  }
  le::store<uint32_t>(data_.get() + at, static_cast<uint32_t>(payload_bytes));
  write(std::span<std::byte>(data_.get() + at + kEntryHeaderBytes, payload_bytes));
  tail_.store(tail + total, std::memory_order_release);
  ++pushed_;
  return PushStatus::kPushed;
}

template <class F>
Ring::Peeked Ring::peek(F&& on_entry) const {
  Peeked out;
  uint64_t pos = head_.load(std::memory_order_relaxed);
  out.cursor = pos;
  const uint64_t tail = tail_.load(std::memory_order_acquire);
  while (pos != tail) {
    const size_t index = static_cast<size_t>(pos & mask_);
    const uint32_t length = le::load<uint32_t>(data_.get() + index);
    if (length == kWrapMarker) {
      pos += capacity_ - index;
      out.cursor = pos;
      continue;
    }
    GH_DASSERT(length <= payload_bytes_max());
    const std::span<const std::byte> payload(data_.get() + index + kEntryHeaderBytes, length);
    if (!on_entry(payload)) break;
    pos += align_up(kEntryHeaderBytes + length);
    out.cursor = pos;
    ++out.entries;
    out.payload_bytes += length;
  }
  return out;
}

template <class F>
size_t Ring::drain(F&& on_entry) {
  const Peeked peeked = peek([&](std::span<const std::byte> payload) {
    on_entry(payload);
    return true;
  });
  release(peeked.cursor);
  return peeked.entries;
}

}  // namespace gh::rec
