// Shard threads: start-up barrier, pinning, and orderly stop.
// Must not depend on any wire protocol.
#include "core/engine/server.hpp"

#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <atomic>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>

#include <fmt/format.h>

namespace gh::engine {

std::vector<int> usable_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int i = 0; i < CPU_SETSIZE; ++i) {
      if (CPU_ISSET(i, &set)) cpus.push_back(i);
    }
  }
  if (cpus.empty()) cpus.push_back(0);
  return cpus;
}

void block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_shutdown_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

Server::Server(ServerOptions options, std::vector<ListenerSpec> listeners)
    : options_(options), listeners_(std::move(listeners)) {}

Server::~Server() {
  request_stop();
  join();
}

Result<void> Server::start() {
  const std::vector<int> cpus = usable_cpus();
  const uint32_t count = options_.shards != 0 ? options_.shards : uint32_t(cpus.size());
  directory_ = std::make_unique<ShardDirectory>(count);
  for (uint32_t i = 0; i < count; ++i) {
    ShardOptions o = options_.shard;
    o.index = i;
    o.cpu = options_.pin ? cpus[i % cpus.size()] : -1;
    o.buffers.group_id = 0;
    if (i < options_.wake_fds.size()) o.wake_fd = options_.wake_fds[i];
    shards_.push_back(std::make_unique<Shard>(o, listeners_, directory_.get()));
  }

  // Shared with the threads, which may still read it after start() returned.
  struct StartState {
    explicit StartState(uint32_t n) : ready(n) {}
    std::latch ready;
    std::latch go{1};
    std::mutex mutex;
    std::optional<Error> first_error;
    std::atomic<bool> abort{false};
  };
  auto state = std::make_shared<StartState>(count);
  for (auto& shard : shards_) {
    threads_.emplace_back([state, s = shard.get()] {
      auto r = s->init();
      if (!r) {
        std::lock_guard lock(state->mutex);
        if (!state->first_error) state->first_error = r.error();
        state->abort.store(true);
      }
      state->ready.count_down();
      state->go.wait();  // serve only when every shard could start
      if (r && !state->abort.load()) s->run();
    });
  }
  state->ready.wait();
  state->go.count_down();
  if (state->abort.load()) {
    join();
    return std::unexpected(*state->first_error);
  }
  return {};
}

void Server::request_stop() {
  for (auto& s : shards_) s->request_stop();
}

void Server::join() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

std::string Server::ring_features() const {
  return shards_.empty() ? std::string() : shards_.front()->ring_features();
}

}  // namespace gh::engine
