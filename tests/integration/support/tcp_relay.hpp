// A byte-recording TCP relay on 127.0.0.1 for integration tests: put it between two real peers
// to see exactly what crossed the wire in each direction. Test support only.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace gh::test {

class TcpRelay {
 public:
  // Listens on an ephemeral loopback port; each accepted connection is relayed to
  // 127.0.0.1:target_port by one background thread.
  explicit TcpRelay(uint16_t target_port);
  ~TcpRelay();
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  uint16_t port() const { return port_; }

  // What one relayed connection carried so far.
  struct Flow {
    std::string to_target;    // bytes the connecting peer sent
    std::string from_target;  // bytes the target sent back
    bool done = false;        // both sides closed
  };
  std::vector<Flow> flows() const;

 private:
  void run();

  uint16_t target_port_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<Flow> flows_;
  std::thread thread_;
};

}  // namespace gh::test
