// The shard event loop: completions in, session callbacks, batched submissions out.
// Must not depend on any wire protocol; everything here runs on the shard's own thread.
#include "core/engine/shard.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "core/tls/session.hpp"

namespace gh::engine {

// One sendmsg in flight per link; blocks are recycled, never freed while the shard runs.
struct SendBlock {
  static constexpr uint32_t kIovMax = 64;
  msghdr message{};
  iovec iov[kIovMax];
};

namespace {

enum class Op : uint8_t {
  kIgnore = 0,
  kAccept,
  kRecv,
  kSend,
  kConnect,
  kTimer,
  kControl,
  kPollIn,
  kPollOut,
  kWake,
};

// user_data layout: op (8 bits) | side (8) | generation (16) | slot or listener (32).
constexpr uint64_t pack(Op op, uint32_t slot, uint16_t generation = 0, Side side = Side::kClient) {
  return (uint64_t(op) << 56) | (uint64_t(side) << 48) | (uint64_t(generation) << 32) | slot;
}
constexpr Op op_of(uint64_t d) { return Op(d >> 56); }
constexpr Side side_of(uint64_t d) { return Side((d >> 48) & 0xff); }
constexpr uint16_t generation_of(uint64_t d) { return uint16_t(d >> 32); }
constexpr uint32_t slot_of(uint64_t d) { return uint32_t(d); }

std::string format_address(const sockaddr_storage& a) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (a.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    port = ntohs(v4->sin_port);
    return fmt::format("{}:{}", host, port);
  }
  if (a.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    port = ntohs(v6->sin6_port);
    return fmt::format("[{}]:{}", host, port);
  }
  return "unix";
}

void set_nodelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

// ---- Link -------------------------------------------------------------------------------------

Link::Link() = default;
Link::~Link() = default;

size_t Link::peek(uint64_t offset, std::span<std::byte> dst) const {
  size_t copied = 0;
  for (uint32_t i = 0; i < in_.count() && copied < dst.size(); ++i) {
    const Slice& s = in_.at(i);
    if (offset >= s.length) {
      offset -= s.length;
      continue;
    }
    const size_t n = std::min<size_t>(s.length - offset, dst.size() - copied);
    std::memcpy(dst.data() + copied, shard_->pool_->data(s.buffer) + s.offset + offset, n);
    copied += n;
    offset = 0;
  }
  return copied;
}

std::span<const std::byte> Link::front() const {
  if (in_.empty()) return {};
  const Slice& s = in_.at(0);
  return {shard_->pool_->data(s.buffer) + s.offset, s.length};
}

void Link::consume(uint64_t n) {
  GH_ASSERT(n <= in_.bytes());
  while (n > 0) {
    Slice& s = in_.front();
    if (n < s.length) {
      in_.trim_front(uint32_t(n));
      return;
    }
    n -= s.length;
    shard_->pool_->unref(in_.pop_front().buffer);
  }
}

void Link::write(std::span<const std::byte> bytes) {
  if (gone_ || bytes.empty()) return;
  shard_->append_copy(out_, bytes);
}

// ---- Connection -------------------------------------------------------------------------------

void Connection::forward(Side from, uint64_t n) {
  Link& src = link(from);
  Link& dst = link(other(from));
  GH_ASSERT(n <= src.in_.bytes());
  BufferPool& pool = *shard_->pool_;
  while (n > 0) {
    Slice& s = src.in_.front();
    // Consecutive messages of one receive buffer leave as one slice, not one per message.
    const bool extends_tail = !dst.out_.empty() && dst.out_.back().buffer == s.buffer &&
                              dst.out_.back().offset + dst.out_.back().length == s.offset;
    if (n < s.length) {
      if (dst.gone_) {
      } else if (extends_tail) {
        dst.out_.grow_back(uint32_t(n));
      } else {
        pool.ref(s.buffer);
        dst.out_.push_back(Slice{s.buffer, s.offset, uint32_t(n)});
      }
      src.in_.trim_front(uint32_t(n));
      break;
    }
    n -= s.length;
    Slice whole = src.in_.pop_front();
    if (dst.gone_) {
      pool.unref(whole.buffer);
    } else if (extends_tail) {
      dst.out_.grow_back(whole.length);
      pool.unref(whole.buffer);
    } else {
      dst.out_.push_back(whole);  // the reference moves with the slice
    }
  }
  shard_->mark_dirty(*this);
}

void Connection::connect_upstream(const sockaddr_storage& address, socklen_t length) {
  shard_->start_connect(*this, address, length);
}

Result<void> Connection::start_tls_server(Side side, const tls::ServerContext& context) {
  Link& l = link(side);
  GH_ASSERT(l.in_.empty() && !l.tls_);
  auto session = tls::Session::server(context);
  if (!session) return std::unexpected(session.error());
  // Output queued so far (the 'S' answer) must leave in plaintext.
  while (!l.out_.empty()) l.wire_.push_back(l.out_.pop_front());
  l.tls_ = std::make_unique<tls::Session>(std::move(*session));
  shard_->mark_dirty(*this);
  return {};
}

Result<void> Connection::start_tls_client(Side side, const tls::ClientContext& context,
                                          std::string_view server_name) {
  Link& l = link(side);
  GH_ASSERT(l.in_.empty() && !l.tls_);
  auto session = tls::Session::client(context, server_name);
  if (!session) return std::unexpected(session.error());
  // Output queued so far (the SSLRequest) must leave in plaintext, before the ClientHello.
  while (!l.out_.empty()) l.wire_.push_back(l.out_.pop_front());
  l.tls_ = std::make_unique<tls::Session>(std::move(*session));
  if (auto r = l.tls_->handshake(); !r) return fail(r.error().message);
  shard_->tls_pump_output(l);
  shard_->mark_dirty(*this);
  return {};
}

void Connection::close() {
  if (closing_) return;
  closing_ = true;
  close_started_ms_ = shard_->now_ms();
  if (paused_) {
    paused_ = false;
    --shard_->paused_;
  }
  for (Link& l : links_) {
    if (l.tls_ && l.is_open()) l.tls_->shutdown();
  }
  shard_->mark_dirty(*this);
}

void Connection::pause() {
  if (paused_ || closing_) return;
  paused_ = true;
  ++shard_->paused_;
}

void Connection::set_deadline_ms(uint32_t ms_from_now) {
  deadline_ms_ = ms_from_now == 0 ? 0 : shard_->now_ms() + ms_from_now;
}

void Connection::post_control(uint32_t shard, uint32_t slot, uint32_t value) {
  shard_->post_control(shard, slot, value);
}

void Connection::open_outbound(const sockaddr_storage& address, socklen_t length,
                               std::unique_ptr<ProtocolSession> session) {
  shard_->open_outbound(address, length, std::move(session));
}

Result<int> Connection::watch(Side side) {
  Link& l = link(side);
  GH_ASSERT(l.fd_ >= 0 && !l.gone_ && !l.connecting_ && !l.tls_ && !l.watched_);
  GH_ASSERT(l.recv_ == Link::Recv::kIdle && l.send_ == nullptr);
  GH_ASSERT(l.in_.empty() && l.queued_output() == 0);
  const int fd = fcntl(l.fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return fail(fmt::format("dup of the {} socket: {}", side_name(side), strerror(errno)));
  // O_NONBLOCK belongs to the open file description: the duplicate and ours share it.
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    const int e = errno;
    ::close(fd);
    return fail(fmt::format("non-blocking {} socket: {}", side_name(side), strerror(e)));
  }
  l.watched_ = true;
  shard_->mark_dirty(*this);
  return fd;
}

void Connection::want_writable(Side side) {
  Link& l = link(side);
  GH_ASSERT(l.watched_);
  if (l.want_writable_) return;
  l.want_writable_ = true;
  shard_->mark_dirty(*this);
}

void Connection::ready_again(Side side, uint32_t readiness) {
  Link& l = link(side);
  GH_ASSERT(l.watched_);
  l.ready_again_ |= readiness;
  if (!ready_again_listed_) {
    ready_again_listed_ = true;
    shard_->ready_again_.push_back(this);
  }
}

uint32_t Connection::shard_index() const { return shard_->index(); }
bool Connection::draining() const { return shard_->draining_; }
uint64_t Connection::now_ms() const { return shard_->now_ms(); }

// ---- Shard ------------------------------------------------------------------------------------

Shard::Shard(ShardOptions options, std::vector<ListenerSpec> listeners, ShardDirectory* directory)
    : options_(options), directory_(directory) {
  for (auto& spec : listeners) listeners_.push_back(ListenerState{std::move(spec)});
}

Shard::~Shard() {
  for (auto& c : slots_) {
    if (!c) continue;
    for (Link& l : c->links_) {
      if (l.fd_ >= 0) ::close(l.fd_);
    }
  }
  for (auto& l : listeners_) {
    if (l.fd >= 0) ::close(l.fd);
  }
  slots_.clear();  // sessions and slices go before the buffers they reference
  pool_.reset();
  if (ring_ready_) io_uring_queue_exit(&ring_);
}

std::string Shard::ring_features() const {
  std::string s;
  if (ring_flags_ & IORING_SETUP_SINGLE_ISSUER) s += "single_issuer ";
  if (ring_flags_ & IORING_SETUP_DEFER_TASKRUN) s += "defer_taskrun ";
  if (ring_flags_ & IORING_SETUP_COOP_TASKRUN) s += "coop_taskrun ";
  return s;
}

Result<void> Shard::init() {
  if (options_.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(options_.cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  }
  refresh_clock();

  // Newest flags first; older kernels refuse them with EINVAL and get the next set.
  const uint32_t flag_sets[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
      IORING_SETUP_SUBMIT_ALL,
      0,
  };
  int rc = -EINVAL;
  for (uint32_t flags : flag_sets) {
    io_uring_params params{};
    params.flags = flags | IORING_SETUP_CQSIZE;
    params.cq_entries = options_.submission_entries * 4;
    rc = io_uring_queue_init_params(options_.submission_entries, &ring_, &params);
    if (rc == 0) {
      ring_flags_ = flags;
      break;
    }
    if (rc != -EINVAL) break;
  }
  if (rc != 0) return fail(fmt::format("shard {}: io_uring setup: {}", index(), strerror(-rc)));
  ring_ready_ = true;
  directory_->ring_fds[index()].store(ring_.ring_fd, std::memory_order_release);

  auto pool = BufferPool::create(&ring_, options_.buffers);
  if (!pool) return fail(fmt::format("shard {}: {}", index(), pool.error().message));
  pool_ = std::move(*pool);

  slots_.resize(options_.connections_max);
  generations_.assign(options_.connections_max, 0);

  for (auto& l : listeners_) {
    const auto& a = l.spec.address;
    int fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(fmt::format("listener {}: socket: {}", l.spec.info.name, strerror(errno)));
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, reinterpret_cast<const sockaddr*>(&a), l.spec.address_length) != 0) {
      const int e = errno;
      ::close(fd);
      return fail(fmt::format("listener {}: bind {}: {}", l.spec.info.name, format_address(a),
                              strerror(e)));
    }
    if (listen(fd, 4096) != 0) {
      const int e = errno;
      ::close(fd);
      return fail(fmt::format("listener {}: listen: {}", l.spec.info.name, strerror(e)));
    }
    l.fd = fd;
  }
  return {};
}

void Shard::refresh_clock() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  now_ms_ = uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

io_uring_sqe* Shard::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  if (s == nullptr) {
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
  }
  GH_ASSERT(s != nullptr);
  return s;
}

void Shard::run() {
  for (uint32_t i = 0; i < listeners_.size(); ++i) arm_accept(listeners_[i]);
  arm_timer();
  arm_wake();
  while (true) {
    deliver_ready_again();
    flush_dirty();
    if (draining_ && live_ == 0) break;
    // Deferred readiness is due at the next turn: look for completions without sleeping.
    const int rc = ready_again_.empty() ? io_uring_submit_and_wait(&ring_, 1) : io_uring_submit(&ring_);
    if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EBUSY && rc != -EAGAIN) {
      fmt::print(stderr, "gatehouse: shard {}: io_uring_submit_and_wait: {}\n", index(),
                 strerror(-rc));
      break;
    }
    refresh_clock();
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      handle(*cqe);
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    if (pool_->publish_returns() && !buffer_waiters_.empty()) {
      std::vector<Connection*> waiters;
      waiters.swap(buffer_waiters_);
      for (Connection* c : waiters) {
        for (Link& l : c->links_) l.waiting_for_buffers_ = false;
        mark_dirty(*c);
      }
    }
  }
  stop_listening();
}

void Shard::handle(const io_uring_cqe& cqe) {
  const uint64_t d = cqe.user_data;
  switch (op_of(d)) {
    case Op::kIgnore:
      return;
    case Op::kAccept:
      on_accept(slot_of(d), cqe.res, cqe.flags);
      return;
    case Op::kTimer:
      on_tick();
      return;
    case Op::kControl:
      on_control(slot_of(d), uint32_t(cqe.res));
      return;
    case Op::kWake:
      on_wake(cqe.res, cqe.flags);
      return;
    default:
      break;
  }
  Connection* c = lookup(slot_of(d), generation_of(d));
  GH_ASSERT(c != nullptr);  // slots outlive their in-flight operations
  switch (op_of(d)) {
    case Op::kRecv:
      on_recv(*c, side_of(d), cqe.res, cqe.flags);
      break;
    case Op::kSend:
      on_send(*c, side_of(d), cqe.res);
      break;
    case Op::kConnect:
      on_connect(*c, cqe.res);
      break;
    case Op::kPollIn:
    case Op::kPollOut:
      on_poll(*c, side_of(d), op_of(d) == Op::kPollOut, cqe.res, cqe.flags);
      break;
    default:
      GH_ASSERT(false);
  }
}

void Shard::arm_accept(ListenerState& l) {
  if (l.fd < 0 || l.accept_armed || draining_) return;
  io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, l.fd, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, pack(Op::kAccept, l.spec.info.index));
  l.accept_armed = true;
}

void Shard::arm_timer() {
  const uint32_t ms = paused_ > 0 ? options_.paused_tick_ms : options_.tick_ms;
  tick_.tv_sec = ms / 1000;
  tick_.tv_nsec = long(ms % 1000) * 1000000;
  io_uring_sqe* s = sqe();
  io_uring_prep_timeout(s, &tick_, 0, 0);
  io_uring_sqe_set_data64(s, pack(Op::kTimer, 0));
}

void Shard::arm_wake() {
  if (options_.wake_fd < 0 || wake_armed_) return;
  io_uring_sqe* s = sqe();
  io_uring_prep_poll_multishot(s, options_.wake_fd, POLLIN);
  io_uring_sqe_set_data64(s, pack(Op::kWake, 0));
  wake_armed_ = true;
}

void Shard::on_wake(int res, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) wake_armed_ = false;
  if (res >= 0) {
    uint64_t count = 0;
    (void)!::read(options_.wake_fd, &count, sizeof count);  // nonblocking; resets the eventfd
    resume_paused();
  }
  arm_wake();
}

// As the paused tick does: each paused connection's session looks again (on_resume) and pauses
// once more if it still has to wait.
void Shard::resume_paused() {
  for (uint32_t i = 0; i < slots_high_water_ && paused_ > 0; ++i) {
    Connection* c = slots_[i].get();
    if (c == nullptr || c->closing_ || !c->paused_) continue;
    c->paused_ = false;
    --paused_;
    c->session_->on_resume(*c);
    mark_dirty(*c);
  }
}

void Shard::on_accept(uint32_t listener, int res, uint32_t flags) {
  ListenerState& l = listeners_[listener];
  if (!(flags & IORING_CQE_F_MORE)) l.accept_armed = false;  // re-armed at the next tick
  if (res < 0) return;
  if (draining_) {
    ::close(res);
    return;
  }
  Connection* c = allocate(&l.spec.info);
  if (c == nullptr) {
    counters_.refused_full.fetch_add(1, std::memory_order_relaxed);
    ::close(res);
    return;
  }
  counters_.accepted.fetch_add(1, std::memory_order_relaxed);
  set_nodelay(res);
  sockaddr_storage peer{};
  socklen_t peer_length = sizeof peer;
  if (getpeername(res, reinterpret_cast<sockaddr*>(&peer), &peer_length) == 0) {
    c->client_address_ = format_address(peer);
  }
  c->links_[0].fd_ = res;
  c->session_ = l.spec.factory->create(index(), l.spec.info);
  mark_dirty(*c);  // arms the receive
  c->session_->on_start(*c);
}

void Shard::on_recv(Connection& c, Side side, int res, uint32_t flags) {
  Link& l = c.link(side);
  if (!(flags & IORING_CQE_F_MORE)) {
    l.recv_ = Link::Recv::kIdle;
    --c.ops_in_flight_;
  }
  mark_dirty(c);
  if (res > 0) {
    const BufferId buffer = flags >> IORING_CQE_BUFFER_SHIFT;
    pool_->adopt_received(buffer);
    if (l.gone_ || c.closing_) {
      pool_->unref(buffer);
      return;
    }
    if (l.tls_) {
      tls_receive(c, l, buffer, uint32_t(res));
    } else {
      l.in_.push_back(Slice{buffer, 0, uint32_t(res)});
      deliver_input(c, side);
    }
    return;
  }
  if (res == -ENOBUFS) {
    // Back-pressure, not an error: the receive re-arms when buffers come back.
    if (!l.waiting_for_buffers_) {
      l.waiting_for_buffers_ = true;
      buffer_waiters_.push_back(&c);
    }
    return;
  }
  if (res == -ECANCELED) return;
  peer_gone(c, l, res == 0 ? 0 : -res, {});
}

void Shard::tls_receive(Connection& c, Link& l, BufferId buffer, uint32_t length) {
  auto fed = l.tls_->feed(std::span<const std::byte>(pool_->data(buffer), length));
  pool_->unref(buffer);
  if (!fed) return peer_gone(c, l, EPROTO, fed.error().message);
  if (!l.tls_->handshake_done()) {
    auto done = l.tls_->handshake();
    tls_pump_output(l);
    if (!done) return peer_gone(c, l, EPROTO, done.error().message);
    if (!*done) return;
  }
  bool got = false;
  while (true) {
    const BufferId out = pool_->take_private();
    auto n = l.tls_->read(std::span<std::byte>(pool_->data(out), pool_->buffer_bytes()));
    if (!n || *n == 0) {
      pool_->unref(out);
      if (!n) {
        if (got) deliver_input(c, l.side_);
        return peer_gone(c, l, EPROTO, n.error().message);
      }
      break;
    }
    l.in_.push_back(Slice{out, 0, uint32_t(*n)});
    got = true;
  }
  tls_pump_output(l);  // TLS 1.3 may answer (key updates, tickets)
  if (got) deliver_input(c, l.side_);
}

void Shard::tls_pump_output(Link& l) {
  while (l.tls_ && l.tls_->pending_output() > 0) {
    const BufferId out = pool_->take_private();
    const size_t n = l.tls_->take_output(std::span<std::byte>(pool_->data(out), pool_->buffer_bytes()));
    if (n == 0) {
      pool_->unref(out);
      break;
    }
    l.wire_.push_back(Slice{out, 0, uint32_t(n)});
  }
}

void Shard::deliver_input(Connection& c, Side side) {
  if (c.closing_ || c.paused_ || !c.session_) return;
  if (c.link(side).in_.empty()) return;
  c.session_->on_input(c, side);
}

void Shard::peer_gone(Connection& c, Link& l, int error, std::string_view detail) {
  if (l.gone_) return;
  l.gone_ = true;
  release_link(l);
  mark_dirty(c);
  if (!c.closing_ && c.session_) c.session_->on_peer_closed(c, PeerClosed{l.side_, error, detail});
}

// Drops queued output of a link that can no longer send.
void Shard::release_link(Link& l) {
  while (!l.out_.empty()) pool_->unref(l.out_.pop_front().buffer);
  if (l.send_ == nullptr) {
    while (!l.wire_.empty()) pool_->unref(l.wire_.pop_front().buffer);
  }
}

void Shard::on_send(Connection& c, Side side, int res) {
  Link& l = c.link(side);
  GH_ASSERT(l.send_ != nullptr);
  give_send_block(l.send_);
  l.send_ = nullptr;
  --c.ops_in_flight_;
  mark_dirty(c);
  if (res < 0) {
    peer_gone(c, l, -res, {});
    release_link(l);
    return;
  }
  uint64_t sent = uint64_t(res);
  while (sent > 0) {
    Slice& s = l.wire_.front();
    if (sent < s.length) {
      l.wire_.trim_front(uint32_t(sent));
      break;
    }
    sent -= s.length;
    pool_->unref(l.wire_.pop_front().buffer);
  }
  if (l.gone_) release_link(l);
}

void Shard::on_connect(Connection& c, int res) {
  Link& l = c.upstream();
  l.connecting_ = false;
  c.upstream_address_.reset();
  --c.ops_in_flight_;
  mark_dirty(c);
  if (res < 0) {
    ::close(l.fd_);
    l.fd_ = -1;
    l.gone_ = true;
    release_link(l);
  }
  if (!c.closing_ && c.session_) c.session_->on_upstream_connected(c, res < 0 ? -res : 0);
}

void Shard::on_poll(Connection& c, Side side, bool out, int res, uint32_t flags) {
  Link& l = c.link(side);
  if (out) {
    l.poll_out_armed_ = false;
    --c.ops_in_flight_;
  } else if (!(flags & IORING_CQE_F_MORE)) {
    l.poll_in_armed_ = false;  // re-armed by service() unless the peer hung up
    --c.ops_in_flight_;
  }
  mark_dirty(c);
  if (res == -ECANCELED || c.closing_ || !c.session_) return;
  uint32_t ready = 0;
  if (res < 0) {
    ready = kHangup;  // the poll itself failed: nothing more to wait for on this socket
  } else {
    if (res & POLLIN) ready |= kReadable;
    if (res & POLLOUT) ready |= kWritable;
    if (res & (POLLHUP | POLLERR)) ready |= kHangup | kReadable;
  }
  if (ready & kHangup) l.hangup_ = true;
  if (ready & kWritable) l.want_writable_ = false;
  // A paused session pumps everything on resume; what arrives meanwhile needs no report.
  if (ready != 0 && !c.paused_) c.session_->on_ready(c, side, ready);
}

void Shard::deliver_ready_again() {
  if (ready_again_.empty()) return;
  std::vector<Connection*> batch;
  batch.swap(ready_again_);  // requests made while delivering wait for the next turn
  for (Connection* c : batch) {
    c->ready_again_listed_ = false;
    for (Link& l : c->links_) {
      const uint32_t ready = l.ready_again_;
      l.ready_again_ = 0;
      if (ready == 0 || c->closing_ || c->paused_ || !c->session_ || !l.watched_) continue;
      c->session_->on_ready(*c, l.side_, ready);
    }
    mark_dirty(*c);
  }
  if (ready_again_.empty()) {
    batch.clear();
    ready_again_.swap(batch);  // keep the capacity
  }
}

void Shard::on_control(uint32_t slot, uint32_t value) {
  if (slot >= slots_.size() || !slots_[slot]) return;
  Connection& c = *slots_[slot];
  if (c.closing_ || !c.session_) return;
  c.session_->on_control(c, value);
  mark_dirty(c);  // the session may have written (a held statement's cancellation)
}

void Shard::on_tick() {
  if (stop_requested_.load(std::memory_order_acquire) && !draining_) {
    draining_ = true;
    drain_deadline_ms_ = now_ms_ + options_.drain_timeout_ms;
    stop_listening();
  }
  for (auto& l : listeners_) arm_accept(l);  // after EMFILE and the like, retry here
  const bool drain_expired = draining_ && now_ms_ >= drain_deadline_ms_;
  bool policy_changed = false;
  if (options_.policy_epoch != nullptr) {
    const uint64_t epoch = options_.policy_epoch->load(std::memory_order_acquire);
    policy_changed = epoch != policy_epoch_seen_;
    policy_epoch_seen_ = epoch;
  }
  if (options_.review_epoch != nullptr) {
    const uint64_t epoch = options_.review_epoch->load(std::memory_order_acquire);
    policy_changed |= epoch != review_epoch_seen_;
    review_epoch_seen_ = epoch;
  }
  for (uint32_t i = 0; i < slots_high_water_; ++i) {
    Connection* c = slots_[i].get();
    if (c == nullptr) continue;
    if (c->closing_) {
      if (drain_expired) c->close_started_ms_ = 0;  // stop waiting for slow readers
      mark_dirty(*c);
      continue;
    }
    if (draining_ && !c->drain_notified_) {
      c->drain_notified_ = true;
      c->session_->on_drain(*c);
      if (c->closing_) continue;
    }
    if (drain_expired) {
      c->close();
      c->close_started_ms_ = 0;
      continue;
    }
    if (c->deadline_ms_ != 0 && now_ms_ >= c->deadline_ms_) {
      c->deadline_ms_ = 0;
      c->session_->on_deadline(*c);
      if (c->closing_) continue;
      mark_dirty(*c);  // the session may have written (a held statement's time-out)
    }
    if (policy_changed) {
      c->session_->on_policy_changed(*c);
      if (c->closing_) continue;
      mark_dirty(*c);
    }
    if (!c->active_since_tick_) {
      for (Link& l : c->links_) {
        l.in_.shrink_if_empty();
        l.out_.shrink_if_empty();
        if (l.send_ == nullptr) l.wire_.shrink_if_empty();
      }
    }
    c->active_since_tick_ = false;
    if (c->paused_) {
      c->paused_ = false;
      --paused_;
      c->session_->on_resume(*c);
      mark_dirty(*c);
    }
  }
  arm_timer();
}

void Shard::stop_listening() {
  for (auto& l : listeners_) {
    if (l.fd < 0) continue;
    io_uring_sqe* s = sqe();
    io_uring_prep_cancel64(s, pack(Op::kAccept, l.spec.info.index), 0);
    io_uring_sqe_set_data64(s, pack(Op::kIgnore, 0));
    io_uring_submit(&ring_);
    ::close(l.fd);
    l.fd = -1;
  }
}

void Shard::mark_dirty(Connection& c) {
  c.active_since_tick_ = true;
  if (c.dirty_) return;
  c.dirty_ = true;
  dirty_.push_back(&c);
}

void Shard::flush_dirty() {
  // service() may dirty connections again (or others): loop until quiet, bounded by the list.
  while (!dirty_.empty()) {
    std::vector<Connection*> batch;
    batch.swap(dirty_);
    for (Connection* c : batch) {
      c->dirty_ = false;
      service(*c);
    }
    if (dirty_.empty()) {
      batch.clear();
      dirty_.swap(batch);  // keep the capacity
    }
  }
}

void Shard::service(Connection& c) {
  for (Link& l : c.links_) {
    if (l.watched_) {
      service_watched(c, l);
      continue;
    }
    const Link& peer = c.link(other(l.side_));
    if (l.fd_ >= 0 && !l.gone_ && !l.connecting_ && !c.closing_) {
      const uint64_t backlog = l.in_.bytes() + peer.queued_output();
      if (l.recv_ == Link::Recv::kIdle && !l.waiting_for_buffers_ &&
          backlog < options_.link_queue_bytes_low) {
        arm_recv(c, l);
      } else if (l.recv_ == Link::Recv::kArmed && backlog > options_.link_queue_bytes_high) {
        cancel_recv(c, l);
      }
    }
    prepare_send(c, l);
  }
  if (c.closing_) try_finish_close(c);
}

void Shard::service_watched(Connection& c, Link& l) {
  if (l.fd_ >= 0 && !l.gone_ && !l.hangup_ && !c.closing_) {
    if (!l.poll_in_armed_) arm_poll(c, l, false);
    if (l.want_writable_ && !l.poll_out_armed_) arm_poll(c, l, true);
  }
  prepare_send(c, l);  // nothing to send; at close it shuts the write side after the session's bytes
}

void Shard::arm_poll(Connection& c, Link& l, bool out) {
  io_uring_sqe* s = sqe();
  if (out) {
    io_uring_prep_poll_add(s, l.fd_, POLLOUT);
    io_uring_sqe_set_data64(s, pack(Op::kPollOut, c.slot_, c.generation_, l.side_));
    l.poll_out_armed_ = true;
  } else {
    io_uring_prep_poll_multishot(s, l.fd_, POLLIN);
    io_uring_sqe_set_data64(s, pack(Op::kPollIn, c.slot_, c.generation_, l.side_));
    l.poll_in_armed_ = true;
  }
  ++c.ops_in_flight_;
}

void Shard::arm_recv(Connection& c, Link& l) {
  io_uring_sqe* s = sqe();
  io_uring_prep_recv_multishot(s, l.fd_, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = pool_->group_id();
  io_uring_sqe_set_data64(s, pack(Op::kRecv, c.slot_, c.generation_, l.side_));
  l.recv_ = Link::Recv::kArmed;
  ++c.ops_in_flight_;
}

void Shard::cancel_recv(Connection& c, Link& l) {
  io_uring_sqe* s = sqe();
  io_uring_prep_cancel64(s, pack(Op::kRecv, c.slot_, c.generation_, l.side_), 0);
  io_uring_sqe_set_data64(s, pack(Op::kIgnore, 0));
  l.recv_ = Link::Recv::kCancelling;
}

void Shard::prepare_send(Connection& c, Link& l) {
  if (l.fd_ < 0 || l.gone_ || l.connecting_ || l.send_ != nullptr) return;
  if (l.tls_) {
    if (l.tls_->handshake_done()) {
      while (!l.out_.empty()) {
        const Slice s = l.out_.pop_front();
        auto w = l.tls_->write(std::span<const std::byte>(pool_->data(s.buffer) + s.offset, s.length));
        pool_->unref(s.buffer);
        if (!w) return peer_gone(c, l, EPROTO, w.error().message);
      }
    }
    tls_pump_output(l);
  } else {
    while (!l.out_.empty()) l.wire_.push_back(l.out_.pop_front());
  }
  if (l.wire_.empty()) {
    if (c.closing_ && !l.shut_write_ && l.out_.empty()) {
      l.shut_write_ = true;
      ::shutdown(l.fd_, SHUT_WR);  // the peer sees end of stream after our last byte
    }
    return;
  }
  SendBlock* b = take_send_block();
  uint32_t n = 0;
  for (; n < l.wire_.count() && n < SendBlock::kIovMax; ++n) {
    const Slice& s = l.wire_.at(n);
    b->iov[n].iov_base = pool_->data(s.buffer) + s.offset;
    b->iov[n].iov_len = s.length;
  }
  b->message = msghdr{};
  b->message.msg_iov = b->iov;
  b->message.msg_iovlen = n;
  io_uring_sqe* s = sqe();
  io_uring_prep_sendmsg(s, l.fd_, &b->message, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, pack(Op::kSend, c.slot_, c.generation_, l.side_));
  l.send_ = b;
  ++c.ops_in_flight_;
}

void Shard::try_finish_close(Connection& c) {
  const bool flush_expired = now_ms_ >= c.close_started_ms_ + options_.close_flush_timeout_ms;
  for (Link& l : c.links_) {
    const bool flushing = l.fd_ >= 0 && !l.gone_ && !l.connecting_ &&
                          (l.send_ != nullptr || l.queued_output() > 0 ||
                           (l.tls_ && l.tls_->pending_output() > 0));
    if (flushing && !flush_expired) return;
  }
  // Everything that could be sent was sent: stop the remaining operations, then free.
  for (Link& l : c.links_) {
    if (l.fd_ < 0) continue;
    if (l.recv_ == Link::Recv::kArmed) cancel_recv(c, l);
    if ((l.send_ != nullptr || l.connecting_ || l.poll_in_armed_ || l.poll_out_armed_) &&
        !c.cancels_issued_) {
      io_uring_sqe* s = sqe();
      io_uring_prep_cancel_fd(s, l.fd_, IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(s, pack(Op::kIgnore, 0));
    }
  }
  c.cancels_issued_ = true;
  if (c.ops_in_flight_ > 0) return;
  free_slot(c);
}

Connection* Shard::allocate(const ListenerInfo* listener) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else if (slots_high_water_ < slots_.size()) {
    slot = slots_high_water_++;
  } else {
    return nullptr;
  }
  auto c = std::unique_ptr<Connection>(new Connection());
  c->shard_ = this;
  c->slot_ = slot;
  c->generation_ = generations_[slot];
  c->listener_ = listener;
  for (int i = 0; i < 2; ++i) {
    c->links_[i].shard_ = this;
    c->links_[i].side_ = Side(i);
  }
  slots_[slot] = std::move(c);
  ++live_;
  counters_.live.store(live_, std::memory_order_relaxed);
  return slots_[slot].get();
}

Connection* Shard::lookup(uint32_t slot, uint16_t generation) {
  if (slot >= slots_.size() || !slots_[slot] || generations_[slot] != generation) return nullptr;
  return slots_[slot].get();
}

void Shard::free_slot(Connection& c) {
  for (Link& l : c.links_) {
    if (l.fd_ >= 0) ::close(l.fd_);
    l.fd_ = -1;
    while (!l.in_.empty()) pool_->unref(l.in_.pop_front().buffer);
    while (!l.out_.empty()) pool_->unref(l.out_.pop_front().buffer);
    while (!l.wire_.empty()) pool_->unref(l.wire_.pop_front().buffer);
  }
  if (c.ready_again_listed_) {
    ready_again_.erase(std::find(ready_again_.begin(), ready_again_.end(), &c));
  }
  const uint32_t slot = c.slot_;
  ++generations_[slot];
  // The session may still hold views into buffers; it goes first, in its own scope.
  c.session_.reset();
  slots_[slot].reset();
  free_slots_.push_back(slot);
  --live_;
  counters_.live.store(live_, std::memory_order_relaxed);
}

void Shard::append_copy(SliceQueue& q, std::span<const std::byte> bytes) {
  const uint32_t size = pool_->buffer_bytes();
  while (!bytes.empty()) {
    if (!q.empty()) {
      Slice& tail = q.back();
      // Only a private buffer that this slice alone references may take more bytes at its end
      // (a TLS plaintext buffer may still be shared with the input it was forwarded from).
      if (!pool_->is_receive_buffer(tail.buffer) && pool_->references(tail.buffer) == 1 &&
          tail.offset + tail.length < size) {
        const uint32_t room = size - (tail.offset + tail.length);
        const uint32_t n = uint32_t(std::min<size_t>(room, bytes.size()));
        std::memcpy(pool_->data(tail.buffer) + tail.offset + tail.length, bytes.data(), n);
        q.grow_back(n);
        bytes = bytes.subspan(n);
        continue;
      }
    }
    const BufferId b = pool_->take_private();
    const uint32_t n = uint32_t(std::min<size_t>(size, bytes.size()));
    std::memcpy(pool_->data(b), bytes.data(), n);
    q.push_back(Slice{b, 0, n});
    bytes = bytes.subspan(n);
  }
}

void Shard::start_connect(Connection& c, const sockaddr_storage& address, socklen_t length) {
  Link& l = c.upstream();
  GH_ASSERT(l.fd_ < 0 && !l.connecting_);
  int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    l.gone_ = true;
    if (c.session_) c.session_->on_upstream_connected(c, errno);
    return;
  }
  set_nodelay(fd);
  l.fd_ = fd;
  l.gone_ = false;
  l.connecting_ = true;
  c.upstream_address_ = std::make_unique<sockaddr_storage>(address);
  io_uring_sqe* s = sqe();
  io_uring_prep_connect(s, fd, reinterpret_cast<const sockaddr*>(c.upstream_address_.get()), length);
  io_uring_sqe_set_data64(s, pack(Op::kConnect, c.slot_, c.generation_, Side::kUpstream));
  ++c.ops_in_flight_;
}

void Shard::post_control(uint32_t shard, uint32_t slot, uint32_t value) {
  if (shard == index()) return on_control(slot, value);
  if (shard >= directory_->ring_fds.size()) return;
  const int fd = directory_->ring_fds[shard].load(std::memory_order_acquire);
  if (fd < 0) return;
  io_uring_sqe* s = sqe();
  io_uring_prep_msg_ring(s, fd, value, pack(Op::kControl, slot), 0);
  io_uring_sqe_set_data64(s, pack(Op::kIgnore, 0));
}

void Shard::open_outbound(const sockaddr_storage& address, socklen_t length,
                          std::unique_ptr<ProtocolSession> session) {
  Connection* c = allocate(nullptr);
  if (c == nullptr) return;
  c->links_[0].gone_ = true;  // no client side
  c->session_ = std::move(session);
  c->session_->on_start(*c);
  start_connect(*c, address, length);
}

SendBlock* Shard::take_send_block() {
  if (free_send_blocks_.empty()) {
    send_blocks_.push_back(std::make_unique<SendBlock>());
    return send_blocks_.back().get();
  }
  SendBlock* b = free_send_blocks_.back();
  free_send_blocks_.pop_back();
  return b;
}

void Shard::give_send_block(SendBlock* b) { free_send_blocks_.push_back(b); }

}  // namespace gh::engine
