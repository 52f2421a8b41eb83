// One engine shard: a pinned thread owning an io_uring, its listeners, its connections and its
// buffers. Shards share nothing mutable; the only cross-shard path is io_uring's MSG_RING.
#pragma once

#include <liburing.h>
#include <netinet/in.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/engine/buffer_pool.hpp"
#include "core/engine/connection.hpp"
#include "core/engine/session.hpp"
#include "core/error.hpp"

namespace gh::engine {

struct ShardOptions {
  uint32_t index = 0;
  int cpu = -1;  // pin to this CPU; -1 leaves the thread unpinned
  BufferPoolOptions buffers;
  uint32_t submission_entries = 4096;
  uint32_t connections_max = 65536;
  uint64_t link_queue_bytes_high = 1u << 20;  // stop receiving from a side above this backlog
  uint64_t link_queue_bytes_low = 256u << 10;  // and resume below this one
  uint32_t tick_ms = 20;
  uint32_t paused_tick_ms = 1;
  uint32_t drain_timeout_ms = 30000;
  uint32_t close_flush_timeout_ms = 5000;
  // Bumped by the control plane whenever shared policy changes (revocations); at each tick a
  // shard that sees a new value calls on_policy_changed on every session. May be null.
  const std::atomic<uint64_t>* policy_epoch = nullptr;
  // Bumped when an approval review is decided: sessions holding a statement look at their
  // review (on_policy_changed as well). May be null.
  const std::atomic<uint64_t>* review_epoch = nullptr;
  // An eventfd that another thread writes when paused connections may go on (the recorder, once
  // a held statement's record is durable): the shard polls it and resumes its paused connections
  // at once instead of at the next paused tick. -1: none. Owned by the caller; outlives the shard.
  int wake_fd = -1;
};

struct ListenerSpec {
  ListenerInfo info;
  sockaddr_storage address{};
  socklen_t address_length = 0;
  SessionFactory* factory = nullptr;
};

// Ring descriptors of every shard, written once at start-up before any connection is accepted,
// read-only afterwards (the MSG_RING targets).
struct ShardDirectory {
  explicit ShardDirectory(uint32_t count) : ring_fds(count) {
    for (auto& fd : ring_fds) fd.store(-1);
  }
  std::vector<std::atomic<int>> ring_fds;
};

struct ShardCounters {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> refused_full{0};
  std::atomic<uint64_t> live{0};
};

class Shard {
 public:
  Shard(ShardOptions options, std::vector<ListenerSpec> listeners, ShardDirectory* directory);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Both on the shard's own thread: init() creates the ring (SINGLE_ISSUER binds it to this
  // thread), the buffers and the listeners; run() serves until stopped and drained.
  Result<void> init();
  void run();
  // Any thread: stop accepting, let sessions finish (on_drain), then return from run().
  void request_stop() { stop_requested_.store(true, std::memory_order_release); }

  uint32_t index() const { return options_.index; }
  const ShardCounters& counters() const { return counters_; }
  std::string ring_features() const;

 private:
  friend class Connection;
  friend class Link;

  struct ListenerState {
    ListenerSpec spec;
    int fd = -1;
    bool accept_armed = false;
  };

  io_uring_sqe* sqe();
  uint64_t now_ms() const { return now_ms_; }
  void refresh_clock();

  void handle(const io_uring_cqe& cqe);
  void on_accept(uint32_t listener, int res, uint32_t flags);
  void on_recv(Connection& c, Side side, int res, uint32_t flags);
  void on_send(Connection& c, Side side, int res);
  void on_connect(Connection& c, int res);
  void on_tick();
  void on_control(uint32_t slot, uint32_t value);
  void on_wake(int res, uint32_t flags);
  void resume_paused();
  void on_poll(Connection& c, Side side, bool out, int res, uint32_t flags);

  void arm_accept(ListenerState& l);
  void arm_timer();
  void arm_wake();
  void arm_recv(Connection& c, Link& l);
  void cancel_recv(Connection& c, Link& l);
  void arm_poll(Connection& c, Link& l, bool out);
  void service_watched(Connection& c, Link& l);
  void deliver_ready_again();
  void prepare_send(Connection& c, Link& l);
  void tls_receive(Connection& c, Link& l, BufferId buffer, uint32_t length);
  void tls_pump_output(Link& l);
  void peer_gone(Connection& c, Link& l, int error, std::string_view detail);
  void deliver_input(Connection& c, Side side);
  void mark_dirty(Connection& c);
  void flush_dirty();
  void service(Connection& c);
  void try_finish_close(Connection& c);
  void release_link(Link& l);
  void stop_listening();

  Connection* allocate(const ListenerInfo* listener);
  Connection* lookup(uint32_t slot, uint16_t generation);
  void free_slot(Connection& c);

  // Engine services used through Connection / Link.
  void append_copy(SliceQueue& q, std::span<const std::byte> bytes);
  void start_connect(Connection& c, const sockaddr_storage& address, socklen_t length);
  void post_control(uint32_t shard, uint32_t slot, uint32_t value);
  void open_outbound(const sockaddr_storage& address, socklen_t length,
                     std::unique_ptr<ProtocolSession> session);

  SendBlock* take_send_block();
  void give_send_block(SendBlock* b);

  ShardOptions options_;
  ShardDirectory* directory_;
  std::vector<ListenerState> listeners_;
  io_uring ring_{};
  bool ring_ready_ = false;
  uint32_t ring_flags_ = 0;
  std::unique_ptr<BufferPool> pool_;

  std::vector<std::unique_ptr<Connection>> slots_;
  std::vector<uint16_t> generations_;
  std::vector<uint32_t> free_slots_;
  uint32_t slots_high_water_ = 0;
  uint32_t live_ = 0;
  uint32_t paused_ = 0;
  std::vector<Connection*> dirty_;
  std::vector<Connection*> buffer_waiters_;
  std::vector<Connection*> ready_again_;  // on_ready to deliver at the next turn (watch mode)
  std::vector<std::unique_ptr<SendBlock>> send_blocks_;
  std::vector<SendBlock*> free_send_blocks_;

  __kernel_timespec tick_{};
  bool wake_armed_ = false;
  uint64_t now_ms_ = 0;
  uint64_t drain_deadline_ms_ = 0;
  bool draining_ = false;
  uint64_t policy_epoch_seen_ = 0;
  uint64_t review_epoch_seen_ = 0;
  std::atomic<bool> stop_requested_{false};
  ShardCounters counters_;
};

}  // namespace gh::engine
