// The PostgreSQL session: drives the client side (startup, TLS, token login) and the upstream side
// (gateway-held credentials), then relays messages, recording each statement and its outcome.
// Must not do I/O itself (core's Connection does) or own policy rules.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
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
#include "core/tls/context.hpp"
#include "mask/policy.hpp"
#include "protocols/postgres/auth/scram_client.hpp"
#include "protocols/postgres/codec/decoder.hpp"
#include "record/ring.hpp"

namespace gh::pg {

// What one shard keeps for its own sessions (used by that shard's thread only, so no locks).
struct ShardState {
  explicit ShardState(const identity::Validator& validator,
                      const identity::RevocationRegistry* revocations = nullptr)
      : tokens(validator), revocations(revocations) {}
  identity::ValidationCache tokens;
  // This shard's view of the revocation list: one atomic load per check, a reload when it moved.
  identity::RevocationView revocations;
  // SCRAM keys derived at the last verified login, by connection: PBKDF2 runs once per salt.
  std::unordered_map<std::string, ScramKeys> scram_keys;
  // Hyperscan scratch grown to serve every connection's pattern sets (guardrails).
  mask::Scratch scratch;
  // Statement classifications by shape, for every connection policy of the shard.
  mask::ClassificationCache classifications;
  // Text of the record a session is building (a result row, a Bind's first bytes): one buffer
  // for the shard rather than one per session.
  std::string record_scratch;
};

// What every session shares, built once at start-up and read-only afterwards.
struct GatewayContext {
  const config::Config* config = nullptr;
  const identity::Validator* validator = nullptr;
  const identity::RevocationRegistry* revocations = nullptr;  // null: nothing is ever revoked
  std::vector<const tls::ServerContext*> listener_tls;  // by listener index; null: no TLS
  std::unordered_map<std::string, const tls::ClientContext*> upstream_tls;  // by connection
  std::vector<rec::Ring*> rings;  // by shard: the producer end is the shard's own
  std::vector<ShardState*> shards;  // by shard
  // Approval holds: where held statements wait for their review (null: approve rules refuse).
  review::ReviewStore* reviews = nullptr;
  // Compiled guardrails, by connection name (mask/policy.hpp).
  std::unordered_map<std::string, const mask::ConnectionPolicy*> policies;
  DecoderLimits limits;
  // Statements (Query, Parse) are held whole before they are forwarded, so that they can be
  // recorded (and, later, judged); above this size the session ends with a clear error.
  uint32_t statement_bytes_max = 64u << 20;
  // Recorded statement text beyond this is cut; the record keeps the full size.
  uint32_t record_text_bytes_max = 256u << 10;
};

class SessionFactory final : public engine::SessionFactory {
 public:
  explicit SessionFactory(const GatewayContext* context) : context_(context) {}
  std::unique_ptr<engine::ProtocolSession> create(uint32_t shard,
                                                  const engine::ListenerInfo& listener) override;

 private:
  const GatewayContext* context_;
};

// The gateway's BackendKeyData process id names the shard and connection slot that own the
// session, so a CancelRequest arriving on any shard can be routed to it.
int32_t gateway_process_id(uint32_t shard, uint32_t slot);
bool decode_gateway_process_id(int32_t pid, uint32_t& shard, uint32_t& slot);

}  // namespace gh::pg
