// Builds what PostgreSQL sessions share (TLS contexts, issuers, recording rings) from the
// configuration, once at start-up. Must not do socket I/O.
#pragma once

#include <memory>
#include <vector>

#include "core/config.hpp"
#include "core/identity/jwt.hpp"
#include "core/tls/context.hpp"
#include "protocols/postgres/session.hpp"

namespace gh::pg {

class Gateway {
 public:
  // `rings` holds one recording ring per shard; all arguments must outlive the gateway.
  // `revocations` (may be null) is checked at every login and on every policy change.
  // `reviews` (may be null: approve rules then refuse) receives approval holds.
  static Result<std::unique_ptr<Gateway>> create(
      const config::Config& config, const identity::Validator& validator,
      std::vector<rec::Ring*> rings, const identity::RevocationRegistry* revocations = nullptr,
      review::ReviewStore* reviews = nullptr);
  SessionFactory& factory() { return factory_; }
  const GatewayContext& context() const { return context_; }

 private:
  Gateway() : factory_(&context_) {}

  GatewayContext context_;
  SessionFactory factory_;
  std::vector<std::unique_ptr<tls::ServerContext>> server_tls_;
  std::vector<std::unique_ptr<tls::ClientContext>> client_tls_;
  std::vector<std::unique_ptr<ShardState>> shard_states_;
  std::vector<std::unique_ptr<mask::ConnectionPolicy>> policies_;
};

}  // namespace gh::pg
