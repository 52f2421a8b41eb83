// Provided-buffer ring registration and buffer recycling for one shard.
// Must not depend on any protocol; runs only on its shard's thread.
#include "core/engine/buffer_pool.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace gh::engine {

Result<std::unique_ptr<BufferPool>> BufferPool::create(io_uring* ring,
                                                        const BufferPoolOptions& options) {
  const uint32_t n = options.ring_buffer_count;
  if (n == 0 || n > 32768 || (n & (n - 1)) != 0)
    return fail(fmt::format("engine.buffer_count must be a power of two in 1..32768, got {}", n));
  if (options.buffer_bytes < 4096 || options.buffer_bytes > (1u << 20))
    return fail(fmt::format("engine.buffer_bytes must be in 4096..1048576, got {}",
                            options.buffer_bytes));

  std::unique_ptr<BufferPool> pool(new BufferPool());
  pool->ring_ = ring;
  pool->ring_count_ = n;
  pool->buffer_bytes_ = options.buffer_bytes;
  pool->group_id_ = options.group_id;
  pool->chunk_count_ = options.private_chunk_buffer_count;

  pool->buf_ring_bytes_ = sizeof(io_uring_buf) * n;
  void* ring_entries = mmap(nullptr, pool->buf_ring_bytes_, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ring_entries == MAP_FAILED) return fail(fmt::format("mmap buffer ring: {}", strerror(errno)));
  pool->buf_ring_ = static_cast<io_uring_buf_ring*>(ring_entries);

  pool->ring_memory_bytes_ = size_t(n) * options.buffer_bytes;
  void* memory = mmap(nullptr, pool->ring_memory_bytes_, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return fail(fmt::format("mmap receive buffers: {}", strerror(errno)));
  pool->ring_memory_ = static_cast<std::byte*>(memory);

  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(pool->buf_ring_);
  reg.ring_entries = n;
  reg.bgid = options.group_id;
  if (int rc = io_uring_register_buf_ring(ring, &reg, 0); rc != 0)
    return fail(fmt::format("io_uring_register_buf_ring: {}", strerror(-rc)));

  io_uring_buf_ring_init(pool->buf_ring_);
  const int mask = io_uring_buf_ring_mask(n);
  for (uint32_t id = 0; id < n; ++id) {
    io_uring_buf_ring_add(pool->buf_ring_, pool->data(id), options.buffer_bytes,
                          static_cast<unsigned short>(id), mask, int(id));
  }
  io_uring_buf_ring_advance(pool->buf_ring_, int(n));
  pool->ring_available_ = n;
  pool->refs_.assign(n, 0);
  return pool;
}

BufferPool::~BufferPool() {
  if (buf_ring_ != nullptr) {
    io_uring_unregister_buf_ring(ring_, group_id_);
    munmap(buf_ring_, buf_ring_bytes_);
  }
  if (ring_memory_ != nullptr) munmap(ring_memory_, ring_memory_bytes_);
}

BufferId BufferPool::take_private() {
  if (private_free_.empty()) {
    // Growth happens only while a shard warms up or under an unusual burst; buffers are kept.
    // Not zeroed: a buffer is written before it is read, and its pages then count in the
    // footprint only once used (logins write a few hundred bytes into each 16 KiB buffer).
    const BufferId first = BufferId(refs_.size());
    private_chunks_.push_back(
        std::make_unique_for_overwrite<std::byte[]>(size_t(chunk_count_) * buffer_bytes_));
    refs_.resize(refs_.size() + chunk_count_, 0);
    for (uint32_t i = chunk_count_; i > 0; --i) private_free_.push_back(first + i - 1);
  }
  const BufferId id = private_free_.back();
  private_free_.pop_back();
  refs_[id] = 1;
  return id;
}

void BufferPool::release(BufferId id) {
  if (id >= ring_count_) {
    private_free_.push_back(id);
    return;
  }
  io_uring_buf_ring_add(buf_ring_, data(id), buffer_bytes_, static_cast<unsigned short>(id),
                        io_uring_buf_ring_mask(ring_count_), int(pending_returns_));
  ++pending_returns_;
}

bool BufferPool::publish_returns() {
  if (pending_returns_ == 0) return false;
  io_uring_buf_ring_advance(buf_ring_, int(pending_returns_));
  ring_available_ += pending_returns_;
  pending_returns_ = 0;
  return true;
}

}  // namespace gh::engine
