// A proxied connection as protocol sessions see it: a client link, an upstream link, and the
// engine services they may use. Must not depend on any wire protocol.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/engine/session.hpp"
#include "core/engine/slice_queue.hpp"
#include "core/error.hpp"

namespace gh::tls {
class Session;
class ServerContext;
class ClientContext;
}  // namespace gh::tls

namespace gh::engine {

class Shard;
struct SendBlock;

// One socket of a connection. Input is plaintext (TLS is undone below this interface); output
// written here is encrypted below it when TLS is on.
class Link {
 public:
  Link();
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Bytes received and not consumed yet.
  uint64_t readable() const { return in_.bytes(); }
  // Copies input bytes [offset, offset + dst.size()) without consuming; returns the count copied.
  size_t peek(uint64_t offset, std::span<std::byte> dst) const;
  // The first contiguous run of input. Valid until the next consume, forward or return to the
  // engine.
  std::span<const std::byte> front() const;
  void consume(uint64_t n);

  // Queues bytes for sending (copied into shard buffers, coalesced).
  void write(std::span<const std::byte> bytes);
  void write(std::string_view bytes) {
    write(std::span(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()));
  }
  uint64_t queued_output() const { return out_.bytes() + wire_.bytes(); }

  bool is_open() const { return fd_ >= 0 && !gone_; }
  bool tls_active() const { return tls_ != nullptr; }
  bool watched() const { return watched_; }

 private:
  friend class Shard;
  friend class Connection;

  Shard* shard_ = nullptr;
  Side side_ = Side::kClient;
  int fd_ = -1;
  SliceQueue in_;    // plaintext input
  SliceQueue out_;   // plaintext output not yet handed to the wire (encrypted first under TLS)
  SliceQueue wire_;  // bytes ready for the socket
  std::unique_ptr<tls::Session> tls_;
  SendBlock* send_ = nullptr;  // the one send in flight, if any
  enum class Recv : uint8_t { kIdle, kArmed, kCancelling } recv_ = Recv::kIdle;
  bool connecting_ = false;
  bool gone_ = false;              // peer closed or failed; no more input or output
  bool waiting_for_buffers_ = false;
  bool shut_write_ = false;
  // Readiness mode (Connection::watch): polled instead of received from and sent to.
  bool watched_ = false;
  bool poll_in_armed_ = false;   // the multishot POLLIN
  bool poll_out_armed_ = false;  // a one-shot POLLOUT
  bool want_writable_ = false;
  bool hangup_ = false;          // no more polls once the peer hung up
  uint32_t ready_again_ = 0;     // readiness to report at the next turn of the loop
};

class Connection {
 public:
  Link& client() { return links_[0]; }
  Link& upstream() { return links_[1]; }
  Link& link(Side s) { return links_[static_cast<int>(s)]; }

  // Moves `n` input bytes of `from` to the output of the other side without copying them.
  void forward(Side from, uint64_t n);

  // Readiness mode, for a session whose library does its own non-blocking I/O on the socket
  // (libssh): from now on the engine neither receives nor sends on `side`; it keeps a multishot
  // POLLIN armed on the socket (POLLOUT on request) and reports readiness with on_ready. Returns
  // a non-blocking duplicate of the descriptor that the caller owns and closes; the engine closes
  // its own at the end. The side must be connected, with nothing received or queued yet.
  Result<int> watch(Side side);
  // Reports kWritable once, when the watched side can take more bytes.
  void want_writable(Side side);
  // Reports `readiness` again at the next turn of the loop, without a syscall. A multishot poll
  // reports new arrivals only, so a session that stops early to bound its work asks for the rest
  // this way.
  void ready_again(Side side, uint32_t readiness = kReadable);

  // Opens the upstream TCP connection; on_upstream_connected reports the outcome.
  void connect_upstream(const sockaddr_storage& address, socklen_t length);

  // Switches a side to TLS. Input already buffered on that side must have been consumed (bytes
  // that arrived before the handshake are refused by the caller, never decrypted); output queued
  // before the call still goes out in plaintext.
  Result<void> start_tls_server(Side side, const tls::ServerContext& context);
  Result<void> start_tls_client(Side side, const tls::ClientContext& context,
                                std::string_view server_name);

  // Sends what is queued, then closes both sockets and destroys the session. Idempotent.
  void close();
  bool closing() const { return closing_; }

  // Stops input delivery; on_resume is called at the next engine tick (used for back-pressure
  // from the recording ring).
  void pause();
  bool paused() const { return paused_; }

  // One deadline per connection (0 clears it); on_deadline is called once when it passes.
  void set_deadline_ms(uint32_t ms_from_now);

  // Cross-shard: delivers `value` to on_control of the connection at (shard, slot), if alive.
  void post_control(uint32_t shard, uint32_t slot, uint32_t value);
  // Opens a connection with no client side (e.g. a cancel request), driven by `session`.
  void open_outbound(const sockaddr_storage& address, socklen_t length,
                     std::unique_ptr<ProtocolSession> session);

  uint32_t shard_index() const;
  uint32_t slot() const { return slot_; }
  const ListenerInfo* listener() const { return listener_; }
  const std::string& client_address() const { return client_address_; }
  bool draining() const;
  uint64_t now_ms() const;

 private:
  friend class Shard;
  Connection() = default;

  Shard* shard_ = nullptr;
  uint32_t slot_ = 0;
  uint16_t generation_ = 0;
  const ListenerInfo* listener_ = nullptr;
  std::string client_address_;
  // While connecting only: connect(2) reads it until completion. On the heap, as 128 bytes held
  // by every connection for its whole life weighed on idle ones.
  std::unique_ptr<sockaddr_storage> upstream_address_;
  Link links_[2];
  std::unique_ptr<ProtocolSession> session_;
  uint32_t ops_in_flight_ = 0;
  uint64_t deadline_ms_ = 0;
  uint64_t close_started_ms_ = 0;
  bool closing_ = false;
  bool paused_ = false;
  bool dirty_ = false;
  bool active_since_tick_ = false;  // any I/O since the last tick; idle ones give memory back
  bool drain_notified_ = false;
  bool cancels_issued_ = false;
  bool ready_again_listed_ = false;  // in the shard's list for the next turn
};

}  // namespace gh::engine
