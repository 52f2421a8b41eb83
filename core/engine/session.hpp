// The contract between the engine and a protocol: core drives sockets, a ProtocolSession decides
// what bytes mean. Must not depend on any wire protocol.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace gh::engine {

class Connection;

enum class Side : uint8_t { kClient = 0, kUpstream = 1 };
inline Side other(Side s) { return s == Side::kClient ? Side::kUpstream : Side::kClient; }
inline const char* side_name(Side s) { return s == Side::kClient ? "client" : "upstream"; }

// What a watched socket (Connection::watch) is ready for, as poll(2) reports it.
enum Readiness : uint32_t {
  kReadable = 1u << 0,
  kWritable = 1u << 1,
  kHangup = 1u << 2,  // hung up or failed: reading finds the end of stream or the error
};

// Why a side stopped: error 0 is an orderly end of stream, otherwise an errno value; detail
// carries TLS reasons.
struct PeerClosed {
  Side side;
  int error;
  std::string_view detail;
};

// One per connection, called only on the connection's shard thread. Callbacks may write output,
// forward bytes, and call Connection::close(); the engine batches the resulting I/O.
class ProtocolSession {
 public:
  virtual ~ProtocolSession() = default;
  virtual void on_start(Connection&) = 0;
  // New plaintext bytes are readable on `side`; bytes left unconsumed stay for the next call.
  virtual void on_input(Connection&, Side side) = 0;
  virtual void on_upstream_connected(Connection&, int error) = 0;
  // After this the side is gone; its unread input is still readable.
  virtual void on_peer_closed(Connection&, const PeerClosed&) = 0;
  virtual void on_resume(Connection&) {}    // after pause(): try again
  virtual void on_deadline(Connection&) {}  // the deadline set with set_deadline_ms passed
  // Shared policy changed (ShardOptions::policy_epoch moved; e.g. a revocation; or review_epoch:
  // an approval review was decided): re-check what the session was allowed and end it if it no
  // longer is, and pick up decisions on held statements. Called from the shard's tick.
  virtual void on_policy_changed(Connection&) {}
  virtual void on_control(Connection&, uint32_t /*value*/) {}  // from post_control
  virtual void on_drain(Connection&) {}     // the server is shutting down: finish and close
  // A watched side (Connection::watch) is ready: the session's own library does the I/O now.
  virtual void on_ready(Connection&, Side, uint32_t /*readiness*/) {}
};

struct ListenerInfo {
  std::string name;
  std::string protocol;
  bool loopback = false;
  uint32_t index = 0;
};

// Creates sessions for one listener. Shared by all shards: create() must be thread-safe.
class SessionFactory {
 public:
  virtual ~SessionFactory() = default;
  virtual std::unique_ptr<ProtocolSession> create(uint32_t shard, const ListenerInfo&) = 0;
};

}  // namespace gh::engine
