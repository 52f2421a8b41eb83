// Start-up assembly of the PostgreSQL gateway's shared, read-only context.
// Must not do socket I/O.
#include "protocols/postgres/gateway.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace gh::pg {

Result<std::unique_ptr<Gateway>> Gateway::create(const config::Config& config,
                                                 const identity::Validator& validator,
                                                 std::vector<rec::Ring*> rings,
                                                 const identity::RevocationRegistry* revocations,
                                                 review::ReviewStore* reviews) {
  std::unique_ptr<Gateway> g(new Gateway());
  g->context_.reviews = reviews;
  g->context_.config = &config;
  g->context_.validator = &validator;
  g->context_.revocations = revocations;
  g->context_.rings = std::move(rings);
  for (size_t shard = 0; shard < g->context_.rings.size(); ++shard) {
    g->shard_states_.push_back(std::make_unique<ShardState>(validator, revocations));
    g->context_.shards.push_back(g->shard_states_.back().get());
  }
  // A statement record must fit its ring with room to spare.
  for (const rec::Ring* ring : g->context_.rings) {
    g->context_.record_text_bytes_max =
        std::min<uint32_t>(g->context_.record_text_bytes_max, uint32_t(ring->payload_bytes_max() / 4));
  }
  auto policies = mask::compile_policies(config);
  if (!policies) return std::unexpected(policies.error());
  g->policies_ = std::move(*policies);
  for (size_t i = 0; i < config.connections.size(); ++i) {
    const mask::ConnectionPolicy* policy = g->policies_[i].get();
    g->context_.policies[config.connections[i].name] = policy;
    for (const mask::PatternSet* set :
         {policy->sql.regexes(), policy->mask.patterns(), policy->mask.prefilter()}) {
      if (set == nullptr) continue;
      for (auto& shard : g->shard_states_) {
        if (auto r = set->grow_scratch(shard->scratch); !r) return std::unexpected(r.error());
      }
    }
  }
  for (const auto& listener : config.listeners) {
    if (!listener.tls) {
      g->context_.listener_tls.push_back(nullptr);
      continue;
    }
    auto ctx = tls::ServerContext::create(
        tls::ServerConfig{.cert_file = listener.tls->cert_file, .key_file = listener.tls->key_file});
    if (!ctx) return fail(fmt::format("listener {}: {}", listener.name, ctx.error().message));
    g->server_tls_.push_back(std::make_unique<tls::ServerContext>(std::move(*ctx)));
    g->context_.listener_tls.push_back(g->server_tls_.back().get());
  }
  for (const auto& connection : config.connections) {
    const auto& up = connection.upstream;
    if (up.tls == config::UpstreamTls::kDisable) continue;
    tls::ClientConfig client{
        .verify = up.tls == config::UpstreamTls::kVerifyFull ? tls::ClientConfig::Verify::kFull
                                                             : tls::ClientConfig::Verify::kNone,
        .ca_file = up.ca_file,
        .server_name = up.server_name};
    auto ctx = tls::ClientContext::create(client);
    if (!ctx) return fail(fmt::format("connection {}: upstream TLS: {}", connection.name, ctx.error().message));
    g->client_tls_.push_back(std::make_unique<tls::ClientContext>(std::move(*ctx)));
    g->context_.upstream_tls[connection.name] = g->client_tls_.back().get();
  }
  return g;
}

}  // namespace gh::pg
