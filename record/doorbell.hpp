// Wakes the flusher thread out of its idle sleep when a shard waits for durability (strict mode).
// An eventfd rung only while the flusher sleeps: no syscall on the producer's path otherwise.
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

 private:
  int fd_ = -1;
  std::atomic<bool> sleeping_{false};
};

}  // namespace gh::rec
