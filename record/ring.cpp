// Per-shard single-producer single-consumer byte ring carrying encoded records to the flusher.
// Lock-free (acquire/release only), allocated once; must not do I/O or allocate after create.
#include "record/ring.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace gh::rec {

namespace {
bool valid_capacity(size_t bytes) {
  return bytes >= limits::ring_bytes_min && bytes <= limits::ring_bytes_max &&
         (bytes & (bytes - 1)) == 0;
}
}  // namespace

Result<std::unique_ptr<Ring>> Ring::create(size_t capacity_bytes) {
  if (!valid_capacity(capacity_bytes)) {
    return fail(fmt::format("ring_bytes {} must be a power of two in [{}, {}]", capacity_bytes,
                            limits::ring_bytes_min, limits::ring_bytes_max));
  }
  return std::make_unique<Ring>(capacity_bytes);
}

Ring::Ring(size_t capacity_bytes)
    : capacity_(capacity_bytes),
      mask_(capacity_bytes - 1),
      // Value-initialized: touches every page once now rather than on the data path.
      data_(std::make_unique<std::byte[]>(capacity_bytes)) {
  GH_ASSERT(valid_capacity(capacity_bytes));
}

PushStatus Ring::try_push(const Event& event) {
  const size_t body_bytes = record_body_bytes(event);
  if (body_bytes == 0) return PushStatus::kTooLarge;
  return try_push_bytes(body_bytes,
                        [&](std::span<std::byte> out) { encode_record_body(event, out); });
}

size_t Ring::free_bytes() const { return capacity_ - used_bytes(); }

void Ring::release(uint64_t cursor) {
  const uint64_t head = head_.load(std::memory_order_relaxed);
  GH_DASSERT(cursor >= head && cursor - head <= capacity_);
  if (cursor != head) head_.store(cursor, std::memory_order_release);
}

size_t Ring::used_bytes() const {
  // Head first: head never passes a tail value that already existed, so tail - head >= 0.
  // Read from a third thread the difference may be stale, hence the clamp.
  const uint64_t head = head_.load(std::memory_order_acquire);
  const uint64_t tail = tail_.load(std::memory_order_acquire);
  return std::min(static_cast<size_t>(tail - head), capacity_);
}

}  // namespace gh::rec
