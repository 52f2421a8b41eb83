// The gateway's YAML configuration: listeners, identity issuers, connections and their
// upstreams, recording, engine limits. Must not depend on any wire protocol.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/guardrails.hpp"
#include "core/identity/jwt.hpp"

namespace gh::config {

struct SocketAddress {
  std::string text;  // as written, e.g. "127.0.0.1:6432"
  sockaddr_storage storage{};
  socklen_t length = 0;
  bool loopback = false;
};

struct EngineConfig {
  uint32_t shards = 0;  // 0: one per CPU
  bool pin = true;      // pin each shard thread to its own CPU
  uint32_t buffer_count = 2048;
  uint32_t buffer_bytes = 16384;
  uint32_t connections_per_shard_max = 65536;
  uint32_t drain_timeout_ms = 30000;
  uint32_t auth_timeout_ms = 30000;     // from accept to an authenticated, ready session
  uint32_t connect_timeout_ms = 10000;  // upstream TCP + TLS + login
};

struct TlsFiles {
  std::string cert_file;
  std::string key_file;
};

struct ListenerConfig {
  std::string name;
  std::string protocol;  // "postgres" or "ssh"
  SocketAddress address;
  std::optional<TlsFiles> tls;
  std::string ssh_host_key_file;  // ssh: the gateway's host key (OpenSSH private key file)
  bool allow_plaintext = false;  // plaintext is always allowed on loopback listeners
};

enum class UpstreamTls { kDisable, kRequire, kVerifyFull };

struct UpstreamConfig {
  std::string host;
  uint16_t port = 5432;
  SocketAddress address;  // resolved at load
  std::string database;
  std::string user;
  std::string password;   // read from password_file or password_env at load; never logged
  UpstreamTls tls = UpstreamTls::kDisable;
  std::string ca_file;
  std::string server_name;  // for verify-full; defaults to host
  // ssh: the gateway's login key (OpenSSH private key file; else `password` is used) and the
  // host key the upstream must present ("ssh-ed25519 AAAA...", as in a .pub file).
  std::string private_key_file;
  std::string host_key;
};

// SSH port forwarding a connection allows (`forwarding:`); all off by default, and what is off
// is refused and recorded.
struct SshForwarding {
  bool local = false;   // direct-tcpip channels: `ssh -L`, `ssh -W`
  bool remote = false;  // tcpip-forward requests and the host's forwarded-tcpip channels: `ssh -R`
  bool agent = false;   // auth-agent-req and the host's auth-agent channels: `ssh -A`
  bool x11 = false;     // x11-req and the host's x11 channels: `ssh -X`, `ssh -Y`
  // When not empty, the only direct-tcpip targets allowed: "host:port" as the caller names them
  // (host compared without case), "[::1]:22" for IPv6 literals.
  std::vector<std::string> local_targets;
};

// One access rule on a CI provenance claim (identity.issuers[].provenance_claims).
struct ClaimRule {
  std::string claim;
  std::vector<std::string> values;  // any one of them
};

struct ConnectionConfig {
  std::string name;      // what clients ask for (PostgreSQL: the startup "database")
  std::string protocol;  // "postgres" or "ssh" (the SSH user names the connection)
  std::vector<std::string> allow_groups;
  UpstreamConfig upstream;
  Guardrails guardrails;  // deny, approve and mask rules (core/guardrails.hpp)
  // CI provenance rules: every rule must hold (the token's provenance claim equals one of the
  // values), e.g. repository_id "892341" and ref refs/heads/main. Checked with allow_groups.
  std::vector<ClaimRule> require_claims;
  SshForwarding forwarding;  // ssh only
};

struct BuiltinIssuerConfig {
  std::string key_file;
  std::string jwks_file;
  std::string issuer = "gatehouse";
  std::string audience = "gatehouse";
};

struct IdentityConfig {
  std::vector<identity::IssuerConfig> issuers;
  identity::ValidatorOptions options;
  std::optional<BuiltinIssuerConfig> builtin;
  // Revoked tokens, subjects and actors (JSON Lines, appended by the admin API); default
  // revocations.jsonl in recording.dir.
  std::string revocations_file;
};

// A service identity that token exchange may name as the new actor ("actor=deploy-svc") when the
// subject token holds one of allow_groups, instead of an actor token.
struct ServiceActorConfig {
  std::string name;
  std::vector<std::string> allow_groups;
};

// The control plane: an HTTP API on its own threads (token exchange, revocation).
struct AdminConfig {
  SocketAddress address;
  // HTTPS files: admin.tls, else the first listener's TLS files; plain HTTP only on loopback.
  std::optional<TlsFiles> tls;
  std::vector<std::string> admin_groups;  // callers of the /admin/ routes need one of these
  uint32_t threads = 2;                   // request handler threads
  uint32_t request_bytes_max = 65536;
  int64_t exchange_ttl_default_s = 900;   // when token exchange is not asked for a ttl
  std::vector<ServiceActorConfig> service_actors;
  // admin.reviews.webhook_url: each new approval review is POSTed here (JSON with a Slack-style
  // "text"); empty: none.
  std::string review_webhook_url;
};

// When a statement's record must be on disk (record/FORMAT.md, "Durability").
enum class Durability : uint8_t {
  kInterval,  // fdatasynced within flush_interval_ms; the statement goes upstream at once
  kStrict,    // forwarded only after its record is fdatasynced (group commit)
};

struct RecordingConfig {
  // false only to measure the gateway without its trail (benchmarks): sessions are not recorded.
  bool enabled = true;
  std::string dir;
  uint32_t flush_interval_ms = 100;
  Durability durability = Durability::kInterval;
  // Result values recorded per statement (masked rows as the client got them); beyond this only
  // the full sizes (rows, bytes) go into the statement's completion record.
  uint64_t statement_result_bytes_max = 64u << 10;
  uint32_t ring_bytes = 4u << 20;
  uint64_t segment_bytes_max = 64ull << 20;
  uint32_t segment_age_s = 3600;       // a segment is sealed once it is this old
  uint32_t checkpoint_interval_s = 60;  // signed checkpoints (heartbeats when idle)
  // The node's Ed25519 signing key (PEM, created at first start when missing) and the keyring of
  // every public key the node ever signed with (what `gatehouse verify --keys` reads).
  std::string node_key_file;
  std::string keyring_file;
  // Checkpoints and seals are appended here too; keep it outside `dir` (empty: none).
  std::string anchor_file;
  // The session catalog (SQLite) that `gatehouse sessions` answers from; default
  // <dir>/catalog.sqlite.
  std::string catalog_file;
};

struct Config {
  std::filesystem::path source;
  std::string node_id;
  EngineConfig engine;
  std::vector<ListenerConfig> listeners;
  IdentityConfig identity;
  std::vector<ConnectionConfig> connections;
  RecordingConfig recording;
  std::optional<AdminConfig> admin;

  const ConnectionConfig* find_connection(std::string_view name) const;
};

// Reads and validates a config file. Relative paths in it are taken from the file's folder.
// Every error names the file, the key path and the reason.
Result<Config> load(const std::filesystem::path& file);
// The same from text; `source` names it in errors, `base_dir` anchors relative paths.
Result<Config> parse(std::string_view yaml_text, const std::string& source,
                     const std::filesystem::path& base_dir);

// "127.0.0.1:6432", "[::1]:6432", "localhost:5432": resolved once, numerically preferred.
Result<SocketAddress> resolve_address(std::string_view host_port);
Result<SocketAddress> resolve_host(const std::string& host, uint16_t port);

// Whether a validated caller may use a connection: one of its groups must be allowed.
bool groups_allowed(const ConnectionConfig& connection, const std::vector<std::string>& groups);

}  // namespace gh::config
