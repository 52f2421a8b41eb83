// Per-shard buffers: the io_uring provided-buffer ring that multishot recv fills, plus private
// buffers for bytes the shard writes itself (encoded messages, TLS records). Shard-local, no locks.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/engine/slice_queue.hpp"
#include "core/error.hpp"

namespace gh::engine {

struct BufferPoolOptions {
  uint16_t group_id = 0;
  uint32_t ring_buffer_count = 2048;  // power of two, at most 32768 (kernel limit)
  uint32_t buffer_bytes = 16384;
  uint32_t private_chunk_buffer_count = 64;  // private buffers are added in chunks on demand
};

// Ids [0, ring_buffer_count) are kernel-provided receive buffers; higher ids are private.
// A buffer is referenced by every Slice that points into it; at zero references a receive buffer
// goes back to the kernel (batched: see publish_returns) and a private one to the free list.
class BufferPool {
 public:
  static Result<std::unique_ptr<BufferPool>> create(io_uring* ring, const BufferPoolOptions&);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  std::byte* data(BufferId id) {
    GH_DASSERT(id < refs_.size());
    if (id < ring_count_) return ring_memory_ + size_t(id) * buffer_bytes_;
    const uint32_t p = id - ring_count_;
    return private_chunks_[p / chunk_count_].get() + size_t(p % chunk_count_) * buffer_bytes_;
  }
  uint32_t buffer_bytes() const { return buffer_bytes_; }
  uint16_t group_id() const { return group_id_; }
  bool is_receive_buffer(BufferId id) const { return id < ring_count_; }

  // A receive completion hands over one buffer with one reference.
  void adopt_received(BufferId id) {
    GH_DASSERT(id < ring_count_ && refs_[id] == 0);
    refs_[id] = 1;
    --ring_available_;
  }
  void ref(BufferId id) { ++refs_[id]; }
  uint32_t references(BufferId id) const { return refs_[id]; }
  void unref(BufferId id) {
    GH_DASSERT(refs_[id] > 0);
    if (--refs_[id] == 0) release(id);
  }
  // A private buffer with one reference; grows the pool when the free list is empty.
  BufferId take_private();

  // Makes returned receive buffers visible to the kernel in one store; call once per loop turn.
  // Returns true when buffers came back (links that hit ENOBUFS may re-arm their receive).
  bool publish_returns();
  uint32_t receive_buffers_available() const { return ring_available_ + pending_returns_; }

 private:
  BufferPool() = default;
  void release(BufferId id);

  io_uring* ring_ = nullptr;
  io_uring_buf_ring* buf_ring_ = nullptr;
  size_t buf_ring_bytes_ = 0;
  std::byte* ring_memory_ = nullptr;
  size_t ring_memory_bytes_ = 0;
  uint32_t ring_count_ = 0;
  uint32_t buffer_bytes_ = 0;
  uint16_t group_id_ = 0;
  uint32_t ring_available_ = 0;
  uint32_t pending_returns_ = 0;
  uint32_t chunk_count_ = 0;
  std::vector<std::unique_ptr<std::byte[]>> private_chunks_;
  std::vector<BufferId> private_free_;
  std::vector<uint32_t> refs_;
};

}  // namespace gh::engine
