// Starts one shard per core, each on its own pinned thread, and stops them on SIGTERM/SIGINT.
// Must not depend on any wire protocol.
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "core/engine/shard.hpp"
#include "core/error.hpp"

namespace gh::engine {

struct ServerOptions {
  uint32_t shards = 0;  // 0: one per CPU this process may run on
  bool pin = true;
  ShardOptions shard;   // index and cpu are filled per shard
  std::vector<int> wake_fds;  // ShardOptions::wake_fd of shard i, when given
};

class Server {
 public:
  Server(ServerOptions options, std::vector<ListenerSpec> listeners);
  ~Server();

  // Spawns the shards and waits until every one has its ring, buffers and listeners, or one
  // failed (then all are stopped and the first error returned).
  Result<void> start();
  void request_stop();
  void join();
  uint32_t shard_count() const { return uint32_t(shards_.size()); }
  std::string ring_features() const;

 private:
  ServerOptions options_;
  std::vector<ListenerSpec> listeners_;
  std::unique_ptr<ShardDirectory> directory_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<std::thread> threads_;
};

// Blocks SIGTERM, SIGINT and SIGPIPE in the calling thread (and threads it creates later).
void block_shutdown_signals();
// Waits for SIGTERM or SIGINT (blocked beforehand); returns the signal number.
int wait_for_shutdown_signal();
// CPUs this process may run on, in order.
std::vector<int> usable_cpus();

}  // namespace gh::engine
