// Start-up assembly of the SSH gateway's shared context: libssh initialised once, then one bind
// per SSH listener and one copy of every connection's keys per shard (libssh objects are not
// shared between threads). Must not do socket I/O.
#include "protocols/ssh/gateway.hpp"

#include <libssh/libssh.h>
#include <libssh/server.h>

#include <fmt/format.h>

namespace gh::ssh {

namespace {

Result<ssh_bind> make_bind(const config::ListenerConfig& listener) {
  auto key = load_private_key(listener.ssh_host_key_file);
  if (!key) {
    return fail(fmt::format("listener {}: ssh.host_key_file: {} (create one with `ssh-keygen -t "
                            "ed25519 -N '' -f FILE`)",
                            listener.name, key.error().message));
  }
  ssh_bind bind = ssh_bind_new();
  if (bind == nullptr) return fail("out of memory for an SSH bind");
  const bool no = false;
  // IMPORT_KEY hands the key to the bind, which frees it.
  bool ok = ssh_bind_options_set(bind, SSH_BIND_OPTIONS_IMPORT_KEY, key->release()) == SSH_OK;
  ok = ok && ssh_bind_options_set(bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no) == SSH_OK;
  ok = ok && ssh_bind_options_set(bind, SSH_BIND_OPTIONS_KEY_EXCHANGE, kKeyExchanges) == SSH_OK;
  ok = ok && ssh_bind_options_set(bind, SSH_BIND_OPTIONS_CIPHERS_C_S, kCiphers) == SSH_OK;
  ok = ok && ssh_bind_options_set(bind, SSH_BIND_OPTIONS_CIPHERS_S_C, kCiphers) == SSH_OK;
  ok = ok && ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HMAC_C_S, kMacs) == SSH_OK;
  ok = ok && ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HMAC_S_C, kMacs) == SSH_OK;
  if (!ok) {
    const std::string why = ssh_get_error(bind);
    ssh_bind_free(bind);
    return fail(fmt::format("listener {}: SSH options: {}", listener.name, why));
  }
  return bind;
}

}  // namespace

Result<std::unique_ptr<Gateway>> Gateway::create(const config::Config& config,
                                                 const identity::Validator& validator,
                                                 std::vector<rec::Ring*> rings,
                                                 const identity::RevocationRegistry* revocations,
                                                 review::ReviewStore* reviews) {
  // Idempotent; before any shard thread uses libssh (it sets up its crypto).
  if (ssh_init() != SSH_OK) return fail("libssh initialisation failed");
  std::unique_ptr<Gateway> g(new Gateway());
  g->context_.config = &config;
  g->context_.rings = std::move(rings);
  g->context_.reviews = reviews;
  auto policies = mask::compile_policies(config);
  if (!policies) return std::unexpected(policies.error());
  g->policies_ = std::move(*policies);
  for (size_t shard = 0; shard < g->context_.rings.size(); ++shard) {
    auto state = std::make_unique<ShardState>(validator, revocations);
    state->relay.resize(g->context_.limits.relay_chunk_bytes);
    for (const auto& listener : config.listeners) {
      if (listener.protocol != "ssh") {
        state->binds.push_back(nullptr);
        continue;
      }
      auto bind = make_bind(listener);
      if (!bind) return std::unexpected(bind.error());
      state->binds.push_back(*bind);
    }
    for (size_t i = 0; i < config.connections.size(); ++i) {
      const auto& connection = config.connections[i];
      if (connection.protocol != "ssh") continue;
      const mask::ConnectionPolicy* policy = g->policies_[i].get();
      g->context_.policies[connection.name] = policy;
      for (const mask::PatternSet* set : {policy->sql.regexes(), policy->mask.patterns(),
                                          policy->mask.prefilter()}) {
        if (set == nullptr) continue;
        if (auto r = set->grow_scratch(state->scratch); !r) return std::unexpected(r.error());
      }
      const auto& up = connection.upstream;
      if (!up.private_key_file.empty()) {
        auto key = load_private_key(up.private_key_file);
        if (!key) {
          return fail(fmt::format("connection {}: upstream.private_key_file: {}", connection.name,
                                  key.error().message));
        }
        state->login_keys.emplace(connection.name, std::move(*key));
      }
      auto pinned = parse_public_key(up.host_key);
      if (!pinned) {
        return fail(fmt::format("connection {}: upstream host key: {}", connection.name,
                                pinned.error().message));
      }
      state->pinned_keys.emplace(connection.name, std::move(*pinned));
    }
    g->context_.shards.push_back(state.get());
    g->shard_states_.push_back(std::move(state));
  }
  return g;
}

}  // namespace gh::ssh
