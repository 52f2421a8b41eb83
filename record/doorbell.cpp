// Wakes a waiter: the flusher out of its idle sleep, or a shard waiting for durability (see
// doorbell.hpp). An eventfd rung only while someone waits.
#include "record/doorbell.hpp"

#include <poll.h>
#include <time.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

#include "core/assert.hpp"

namespace gh::rec {

Doorbell::Doorbell() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) { GH_ASSERT(fd_ >= 0); }

Doorbell::~Doorbell() { ::close(fd_); }

void Doorbell::ring() {
  // Pairs with the fence in prepare_sleep(): either the sleeper sees the work that was published
  // before this call, or this call sees it sleeping and writes the eventfd.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!sleeping_.load(std::memory_order_relaxed)) return;
  if (!sleeping_.exchange(false, std::memory_order_acq_rel)) return;
  const uint64_t one = 1;
  (void)!::write(fd_, &one, sizeof one);  // EAGAIN only when the counter is saturated: still set
}

void Doorbell::prepare_sleep() {
  sleeping_.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void Doorbell::wait(std::chrono::microseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  const timespec ts{static_cast<time_t>(timeout.count() / 1'000'000),
                    static_cast<long>(timeout.count() % 1'000'000) * 1000};
  if (sleeping_.load(std::memory_order_acquire)) (void)::ppoll(&p, 1, &ts, nullptr);
  sleeping_.store(false, std::memory_order_relaxed);
  uint64_t count = 0;
  (void)!::read(fd_, &count, sizeof count);
}

}  // namespace gh::rec
