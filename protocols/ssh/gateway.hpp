// Builds what SSH sessions share (host keys per shard, upstream keys, pinned host keys, token
// caches, guardrails) from the configuration, once at start-up. Must not do socket I/O.
#pragma once

#include <memory>
#include <vector>

#include "core/config.hpp"
#include "core/identity/jwt.hpp"
#include "core/identity/revocation.hpp"
#include "protocols/ssh/session.hpp"

namespace gh::ssh {

class Gateway {
 public:
  // `rings` holds one recording ring per shard; all arguments must outlive the gateway. Fails
  // with the listener or connection and the reason when a key cannot be loaded.
  static Result<std::unique_ptr<Gateway>> create(
      const config::Config& config, const identity::Validator& validator,
      std::vector<rec::Ring*> rings, const identity::RevocationRegistry* revocations = nullptr,
      review::ReviewStore* reviews = nullptr);
  SessionFactory& factory() { return factory_; }

 private:
  Gateway() : factory_(&context_) {}

  GatewayContext context_;
  SessionFactory factory_;
  std::vector<std::unique_ptr<ShardState>> shard_states_;
  std::vector<std::unique_ptr<mask::ConnectionPolicy>> policies_;
};

}  // namespace gh::ssh
