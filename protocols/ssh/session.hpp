// The SSH session: a libssh server session toward the caller (the token as password, the SSH
// user naming the connection) and a libssh client session toward the host (gateway-held key or
// password, pinned host key), both non-blocking on sockets the shard's io_uring polls
// (Connection::watch). Session channels (exec, pty-req and shell) are relayed one to one and
// recorded.
// Must not do socket I/O beyond libssh's on watched sockets, or own policy rules.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/config.hpp"
#include "core/engine/connection.hpp"
#include "core/engine/session.hpp"
#include "core/review.hpp"
#include "core/identity/jwt.hpp"
#include "core/identity/revocation.hpp"
#include "core/identity/validation_cache.hpp"
#include "mask/policy.hpp"
#include "protocols/ssh/keys.hpp"
#include "record/ring.hpp"

struct ssh_bind_struct;

namespace gh::ssh {

// Every size and count an SSH session bounds, in one place.
struct Limits {
  // Bytes moved per read from a channel; also the per-shard relay buffer's size.
  uint32_t relay_chunk_bytes = 32 * 1024;
  // Work per readiness report before yielding to other connections (Connection::ready_again).
  uint32_t pump_rounds_max = 64;
  uint32_t messages_per_round_max = 32;
  uint32_t auth_attempts_max = 4;
  uint32_t channels_max = 16;
  uint32_t channel_requests_max = 64;
  // Output held back while masking, waiting for the end of its line (a secret split across two
  // reads is still found); a longer line is masked in pieces of this size.
  uint32_t mask_line_bytes_max = 16 * 1024;
  // Recorded output bytes of each stream of a channel; beyond it the size is still recorded.
  uint64_t recorded_stream_bytes_max = 1ull << 20;
  // The same for a terminal or shell channel (output and input each): sessions are long.
  uint64_t recorded_terminal_bytes_max = 16ull << 20;
  // The longest line a shell guardrail reconstructs; a longer one passes unjudged.
  uint32_t typed_line_bytes_max = 4096;
  uint32_t pending_signals_max = 16;
};
static_assert(32 * 1024 <= (1u << 20), "a relay chunk fits in one record");

// What one shard keeps for its own sessions (used by that shard's thread only, so no locks).
struct ShardState {
  ShardState(const identity::Validator& validator, const identity::RevocationRegistry* revocations)
      : tokens(validator), revocations(revocations) {}
  ~ShardState();
  ShardState(const ShardState&) = delete;
  ShardState& operator=(const ShardState&) = delete;

  identity::ValidationCache tokens;
  identity::RevocationView revocations;
  // libssh objects are not shared between threads: one bind (with the host key) per listener,
  // and each connection's keys, per shard.
  std::vector<ssh_bind_struct*> binds;               // by listener index; null: not SSH
  std::unordered_map<std::string, Key> login_keys;   // by connection: upstream private key
  std::unordered_map<std::string, Key> pinned_keys;  // by connection: upstream host key
  std::vector<char> relay;                           // Limits::relay_chunk_bytes
  mask::Scratch scratch;                             // Hyperscan, for every connection's rules
  std::vector<mask::Match> matches;
};

// What every session shares, built once at start-up and read-only afterwards.
struct GatewayContext {
  const config::Config* config = nullptr;
  std::vector<rec::Ring*> rings;    // by shard: the producer end is the shard's own
  std::vector<ShardState*> shards;  // by shard
  // Compiled guardrails by connection name: deny regexes (judged on exec command lines) and
  // mask rules (applied to output).
  std::unordered_map<std::string, const mask::ConnectionPolicy*> policies;
  // Approval holds: where held exec commands wait for their review (null: approve rules refuse).
  review::ReviewStore* reviews = nullptr;
  Limits limits;
};

class SessionFactory final : public engine::SessionFactory {
 public:
  explicit SessionFactory(const GatewayContext* context) : context_(context) {}
  std::unique_ptr<engine::ProtocolSession> create(uint32_t shard,
                                                  const engine::ListenerInfo& listener) override;

 private:
  const GatewayContext* context_;
};

// Algorithms both sides offer: the libssh defaults without the ciphers the Terrapin attack
// (CVE-2023-48795) exploits when a peer lacks strict key exchange (chacha20-poly1305 and the
// encrypt-then-MAC modes). libssh 0.10.6 adds kex-strict-{c,s}-v00@openssh.com to every first
// key exchange by itself and enforces it when the peer offers it too.
inline constexpr const char* kCiphers =
    "aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr";
inline constexpr const char* kMacs = "hmac-sha2-256,hmac-sha2-512";
inline constexpr const char* kKeyExchanges =
    "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,"
    "ecdh-sha2-nistp521,diffie-hellman-group18-sha512,diffie-hellman-group16-sha512,"
    "diffie-hellman-group14-sha256";

}  // namespace gh::ssh
