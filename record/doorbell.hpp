// Wakes a waiter: the flusher out of its idle sleep when a shard waits for durability (strict
// mode), and a shard when the record it waits for is durable (the shard's io_uring polls fd()).
// An eventfd rung only while someone waits: no syscall on the ringing side otherwise.
#pragma once

#include <atomic>
#include <chrono>

namespace gh::rec {

class Doorbell {
 public:
  Doorbell();  // asserts that the eventfd could be made (start-up only)
  ~Doorbell();
  Doorbell(const Doorbell&) = delete;
  Doorbell& operator=(const Doorbell&) = delete;

  // Any thread: wakes a sleeping waiter; one atomic exchange when it is awake.
  void ring();
  // The one waiting thread: announce the sleep, then re-check for work before wait().
  void prepare_sleep();
  // Sleeps up to `timeout` unless ring() came since prepare_sleep().
  void wait(std::chrono::microseconds timeout);
  void cancel_sleep() { sleeping_.store(false, std::memory_order_relaxed); }
  // For a waiter that polls the eventfd in its own event loop (prepare_sleep(), re-check, poll,
  // then read the 8-byte counter to reset it) instead of calling wait().
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::atomic<bool> sleeping_{false};
};

}  // namespace gh::rec
