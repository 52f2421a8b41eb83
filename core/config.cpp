// Loads gatehouse.yaml into typed configuration, failing fast with file, key and reason.
// yaml-cpp reports errors by exception; they are caught here and never leave this file.
#include "core/config.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace gh::config {
namespace {

// Walks a YAML tree while remembering where it is, so errors can say "listeners[0].address".
class Reader {
 public:
  Reader(std::string source, std::filesystem::path base_dir)
      : source_(std::move(source)), base_dir_(std::move(base_dir)) {}

  std::unexpected<Error> error(const std::string& path, const std::string& reason) const {
    return fail(fmt::format("{}: {}: {}", source_, path.empty() ? "(top level)" : path, reason));
  }

  // Keys not in `known` are refused: a typo must not silently mean "default".
  Result<void> only_keys(const YAML::Node& map, const std::string& path,
                         std::initializer_list<std::string_view> known) const {
    if (!map.IsMap()) return error(path, "expected a mapping");
    for (const auto& kv : map) {
      const std::string key = kv.first.Scalar();
      if (std::find(known.begin(), known.end(), key) == known.end())
        return error(join(path, key), "unknown key");
    }
    return {};
  }

  Result<std::string> string(const YAML::Node& map, const std::string& path, std::string_view key,
                             std::optional<std::string> fallback = std::nullopt) const {
    const YAML::Node n = map[std::string(key)];
    if (!n) {
      if (fallback) return *fallback;
      return error(join(path, key), "required");
    }
    if (!n.IsScalar()) return error(join(path, key), "expected a string");
    return n.Scalar();
  }

  template <class T>
  Result<T> integer(const YAML::Node& map, const std::string& path, std::string_view key,
                    T fallback, T min, T max) const {
    const YAML::Node n = map[std::string(key)];
    if (!n) return fallback;
    if (!n.IsScalar()) return error(join(path, key), "expected an integer");
    const std::string& text = n.Scalar();
    // Parsed wide first, so that an out-of-range value is reported as such.
    long long value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size())
      return error(join(path, key), fmt::format("expected an integer, got '{}'", text));
    if (std::cmp_less(value, min) || std::cmp_greater(value, max))
      return error(join(path, key), fmt::format("must be in {}..{}, got {}", min, max, text));
    return static_cast<T>(value);
  }

  Result<bool> boolean(const YAML::Node& map, const std::string& path, std::string_view key,
                       bool fallback) const {
    const YAML::Node n = map[std::string(key)];
    if (!n) return fallback;
    const std::string& v = n.IsScalar() ? n.Scalar() : std::string();
    if (v == "true" || v == "yes" || v == "on") return true;
    if (v == "false" || v == "no" || v == "off") return false;
    return error(join(path, key), "expected true or false");
  }

  Result<std::vector<std::string>> strings(const YAML::Node& map, const std::string& path,
                                           std::string_view key, bool required) const {
    const YAML::Node n = map[std::string(key)];
    std::vector<std::string> out;
    if (!n) {
      if (required) return error(join(path, key), "required");
      return out;
    }
    if (n.IsScalar()) {
      out.push_back(n.Scalar());
      return out;
    }
    if (!n.IsSequence()) return error(join(path, key), "expected a list of strings");
    for (size_t i = 0; i < n.size(); ++i) {
      if (!n[i].IsScalar()) return error(fmt::format("{}[{}]", join(path, key), i), "expected a string");
      out.push_back(n[i].Scalar());
    }
    return out;
  }

  std::string path_of(const std::string& value) const {
    if (value.empty()) return value;
    std::filesystem::path p(value);
    return p.is_absolute() ? value : (base_dir_ / p).lexically_normal().string();
  }

  const std::string& source() const { return source_; }
  const std::filesystem::path& base_dir() const { return base_dir_; }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
  }

 private:
  std::string source_;
  std::filesystem::path base_dir_;
};

#define GH_TRY(var, expr)              \
  auto var##_result = (expr);          \
  if (!var##_result) return std::unexpected(var##_result.error()); \
  auto var = std::move(*var##_result)

Result<EngineConfig> parse_engine(const Reader& r, const YAML::Node& n) {
  EngineConfig e;
  if (!n) return e;
  const std::string p = "engine";
  if (auto ok = r.only_keys(n, p, {"shards", "pin", "buffer_count", "buffer_bytes",
                                   "connections_per_shard_max", "drain_timeout_ms",
                                   "auth_timeout_ms", "connect_timeout_ms"});
      !ok)
    return std::unexpected(ok.error());
  GH_TRY(shards, r.integer<uint32_t>(n, p, "shards", 0, 0, 1024));
  GH_TRY(pin, r.boolean(n, p, "pin", true));
  GH_TRY(buffer_count, r.integer<uint32_t>(n, p, "buffer_count", e.buffer_count, 16, 32768));
  if ((buffer_count & (buffer_count - 1)) != 0)
    return r.error("engine.buffer_count", "must be a power of two");
  GH_TRY(buffer_bytes, r.integer<uint32_t>(n, p, "buffer_bytes", e.buffer_bytes, 4096, 1u << 20));
  GH_TRY(conns, r.integer<uint32_t>(n, p, "connections_per_shard_max", e.connections_per_shard_max,
                                    1, 1u << 22));
  GH_TRY(drain, r.integer<uint32_t>(n, p, "drain_timeout_ms", e.drain_timeout_ms, 0, 3600000));
  GH_TRY(auth, r.integer<uint32_t>(n, p, "auth_timeout_ms", e.auth_timeout_ms, 100, 600000));
  GH_TRY(connect, r.integer<uint32_t>(n, p, "connect_timeout_ms", e.connect_timeout_ms, 100, 600000));
  e.shards = shards;
  e.pin = pin;
  e.buffer_count = buffer_count;
  e.buffer_bytes = buffer_bytes;
  e.connections_per_shard_max = conns;
  e.drain_timeout_ms = drain;
  e.auth_timeout_ms = auth;
  e.connect_timeout_ms = connect;
  return e;
}

Result<ListenerConfig> parse_listener(const Reader& r, const YAML::Node& n, const std::string& p) {
  if (auto ok = r.only_keys(n, p, {"name", "protocol", "address", "tls", "allow_plaintext", "ssh"});
      !ok)
    return std::unexpected(ok.error());
  ListenerConfig l;
  GH_TRY(name, r.string(n, p, "name"));
  GH_TRY(protocol, r.string(n, p, "protocol", "postgres"));
  if (protocol != "postgres" && protocol != "ssh") return r.error(p + ".protocol", "supported: postgres, ssh");
  if (protocol == "ssh") {
    // SSH brings its own encryption: the listener has a host key instead of TLS files.
    if (n["tls"]) return r.error(p + ".tls", "not used by ssh listeners (they use ssh.host_key_file)");
    const YAML::Node s = n["ssh"];
    const std::string sp = p + ".ssh";
    if (!s) return r.error(sp, "required for protocol ssh: ssh.host_key_file");
    if (auto ok = r.only_keys(s, sp, {"host_key_file"}); !ok) return std::unexpected(ok.error());
    GH_TRY(host_key_file, r.string(s, sp, "host_key_file"));
    l.ssh_host_key_file = r.path_of(host_key_file);
  } else if (n["ssh"]) {
    return r.error(p + ".ssh", "only for protocol ssh");
  }
  GH_TRY(address_text, r.string(n, p, "address"));
  auto address = resolve_address(address_text);
  if (!address) return r.error(p + ".address", address.error().message);
  GH_TRY(allow_plaintext, r.boolean(n, p, "allow_plaintext", false));
  if (const YAML::Node t = n["tls"]) {
    const std::string tp = p + ".tls";
    if (auto ok = r.only_keys(t, tp, {"cert_file", "key_file"}); !ok) return std::unexpected(ok.error());
    GH_TRY(cert, r.string(t, tp, "cert_file"));
    GH_TRY(key, r.string(t, tp, "key_file"));
    l.tls = TlsFiles{r.path_of(cert), r.path_of(key)};
  }
  l.name = name;
  l.protocol = protocol;
  l.address = *address;
  l.allow_plaintext = allow_plaintext;
  return l;
}

Result<identity::IssuerConfig> parse_issuer(const Reader& r, const YAML::Node& n,
                                            const std::string& p) {
  if (auto ok = r.only_keys(n, p, {"name", "issuer", "audience", "jwks_file", "groups_claim",
                                   "algorithms", "provenance", "provenance_claims"});
      !ok)
    return std::unexpected(ok.error());
  identity::IssuerConfig i;
  // CI provenance: a preset, then claims of one's own; each claim once.
  GH_TRY(preset, r.string(n, p, "provenance", ""));
  if (preset == "github-actions") {
    // GitHub's OIDC token claims that say which repository, workflow, run and ref a job is.
    i.provenance_claims = {"repository",       "repository_id", "workflow",
                           "job_workflow_ref", "run_id",        "run_attempt",
                           "ref",              "event_name",    "runner_environment"};
  } else if (!preset.empty()) {
    return r.error(p + ".provenance", fmt::format("known presets: github-actions, got '{}'", preset));
  }
  GH_TRY(provenance_claims, r.strings(n, p, "provenance_claims", false));
  for (const std::string& claim : provenance_claims) {
    if (std::find(i.provenance_claims.begin(), i.provenance_claims.end(), claim) ==
        i.provenance_claims.end())
      i.provenance_claims.push_back(claim);
  }
  GH_TRY(issuer, r.string(n, p, "issuer"));
  GH_TRY(name, r.string(n, p, "name", issuer));
  GH_TRY(audiences, r.strings(n, p, "audience", true));
  GH_TRY(jwks, r.string(n, p, "jwks_file"));
  GH_TRY(groups_claim, r.string(n, p, "groups_claim", "groups"));
  GH_TRY(algorithms, r.strings(n, p, "algorithms", false));
  i.name = name;
  i.issuer = issuer;
  i.audiences = audiences;
  i.jwks_file = r.path_of(jwks);
  i.groups_claim = groups_claim;
  if (!algorithms.empty()) i.algorithms = algorithms;
  return i;
}

Result<IdentityConfig> parse_identity(const Reader& r, const YAML::Node& n) {
  const std::string p = "identity";
  if (!n) return r.error(p, "required: at least one issuer");
  if (auto ok = r.only_keys(n, p, {"issuers", "clock_skew_s", "delegation_depth_max",
                                   "token_bytes_max", "builtin", "revocations_file"});
      !ok)
    return std::unexpected(ok.error());
  IdentityConfig id;
  GH_TRY(revocations_file, r.string(n, p, "revocations_file", ""));
  id.revocations_file = r.path_of(revocations_file);
  GH_TRY(skew, r.integer<int64_t>(n, p, "clock_skew_s", 60, 0, 300));
  GH_TRY(depth, r.integer<uint32_t>(n, p, "delegation_depth_max", 8, 0, 32));
  GH_TRY(token_max, r.integer<uint32_t>(n, p, "token_bytes_max", 16384, 512, 65536));
  id.options.clock_skew_s = skew;
  id.options.delegation_depth_max = depth;
  id.options.token_bytes_max = token_max;
  if (const YAML::Node b = n["builtin"]) {
    const std::string bp = p + ".builtin";
    if (auto ok = r.only_keys(b, bp, {"key_file", "jwks_file", "issuer", "audience"}); !ok)
      return std::unexpected(ok.error());
    BuiltinIssuerConfig builtin;
    GH_TRY(key, r.string(b, bp, "key_file"));
    GH_TRY(jwks, r.string(b, bp, "jwks_file"));
    GH_TRY(issuer, r.string(b, bp, "issuer", builtin.issuer));
    GH_TRY(audience, r.string(b, bp, "audience", builtin.audience));
    builtin.key_file = r.path_of(key);
    builtin.jwks_file = r.path_of(jwks);
    builtin.issuer = issuer;
    builtin.audience = audience;
    // The built-in issuer is trusted like any other, with EdDSA only.
    id.issuers.push_back(identity::IssuerConfig{.name = "builtin",
                                                .issuer = builtin.issuer,
                                                .audiences = {builtin.audience},
                                                .jwks_file = builtin.jwks_file,
                                                .groups_claim = "groups",
                                                .algorithms = {"EdDSA"},
                                                .provenance_claims = {}});
    id.builtin = builtin;
  }
  if (const YAML::Node list = n["issuers"]) {
    if (!list.IsSequence()) return r.error(p + ".issuers", "expected a list");
    for (size_t i = 0; i < list.size(); ++i) {
      GH_TRY(issuer, parse_issuer(r, list[i], fmt::format("{}.issuers[{}]", p, i)));
      id.issuers.push_back(std::move(issuer));
    }
  }
  if (id.issuers.empty()) return r.error(p, "no issuers: add identity.issuers or identity.builtin");
  if (id.builtin) {
    // Token exchange copies the subject token's provenance into the tokens it mints: the built-in
    // issuer records every claim any issuer records.
    identity::IssuerConfig& builtin = id.issuers.front();
    for (const identity::IssuerConfig& other : id.issuers) {
      for (const std::string& claim : other.provenance_claims) {
        if (std::find(builtin.provenance_claims.begin(), builtin.provenance_claims.end(), claim) ==
                builtin.provenance_claims.end() &&
            claim != builtin.groups_claim)
          builtin.provenance_claims.push_back(claim);
      }
    }
  }
  return id;
}

// connections[].require_claims: {claim: value} or {claim: [values]}; each claim must be one
// that some issuer records as provenance, or the rule could never hold.
Result<std::vector<ClaimRule>> parse_claim_rules(const Reader& r, const YAML::Node& n,
                                                 const std::string& p,
                                                 const IdentityConfig& identity) {
  std::vector<ClaimRule> rules;
  if (!n) return rules;
  if (!n.IsMap() || n.size() == 0) return r.error(p, "expected a mapping of claim: value(s)");
  for (const auto& kv : n) {
    ClaimRule rule;
    rule.claim = kv.first.Scalar();
    const std::string rp = p + "." + rule.claim;
    bool recorded = false;
    for (const auto& issuer : identity.issuers) {
      recorded |= std::find(issuer.provenance_claims.begin(), issuer.provenance_claims.end(),
                            rule.claim) != issuer.provenance_claims.end();
    }
    if (!recorded)
      return r.error(rp, "no issuer records this claim (add it to an issuer's provenance_claims)");
    if (kv.second.IsScalar()) {
      rule.values.push_back(kv.second.Scalar());
    } else if (kv.second.IsSequence() && kv.second.size() > 0) {
      for (size_t i = 0; i < kv.second.size(); ++i) {
        if (!kv.second[i].IsScalar()) return r.error(fmt::format("{}[{}]", rp, i), "expected a string");
        rule.values.push_back(kv.second[i].Scalar());
      }
    } else {
      return r.error(rp, "expected a value or a non-empty list of values");
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

Result<std::optional<AdminConfig>> parse_admin(const Reader& r, const YAML::Node& n,
                                               const std::vector<ListenerConfig>& listeners,
                                               const IdentityConfig& identity) {
  const std::string p = "admin";
  if (!n) return std::optional<AdminConfig>();
  if (auto ok = r.only_keys(n, p, {"address", "tls", "admin_groups", "threads",
                                   "request_bytes_max", "token_exchange", "reviews"});
      !ok)
    return std::unexpected(ok.error());
  AdminConfig a;
  GH_TRY(address_text, r.string(n, p, "address"));
  auto address = resolve_address(address_text);
  if (!address) return r.error(p + ".address", address.error().message);
  a.address = *address;
  if (const YAML::Node t = n["tls"]) {
    const std::string tp = p + ".tls";
    if (auto ok = r.only_keys(t, tp, {"cert_file", "key_file"}); !ok) return std::unexpected(ok.error());
    GH_TRY(cert, r.string(t, tp, "cert_file"));
    GH_TRY(key, r.string(t, tp, "key_file"));
    a.tls = TlsFiles{r.path_of(cert), r.path_of(key)};
  } else if (!a.address.loopback) {
    // Tokens travel in these requests: off loopback, only over TLS.
    for (const auto& l : listeners) {
      if (l.tls && !a.tls) a.tls = l.tls;
    }
    if (!a.tls)
      return r.error(p + ".tls", "required off loopback (no listener has TLS files to share)");
  }
  GH_TRY(groups, r.strings(n, p, "admin_groups", true));
  if (groups.empty()) return r.error(p + ".admin_groups", "must name at least one group");
  a.admin_groups = groups;
  GH_TRY(threads, r.integer<uint32_t>(n, p, "threads", a.threads, 1, 64));
  GH_TRY(request_max, r.integer<uint32_t>(n, p, "request_bytes_max", a.request_bytes_max, 1024,
                                          1u << 20));
  a.threads = threads;
  a.request_bytes_max = request_max;
  if (!identity.builtin)
    return r.error(p, "token exchange signs with the built-in issuer: configure identity.builtin");
  if (const YAML::Node x = n["token_exchange"]) {
    const std::string xp = p + ".token_exchange";
    if (auto ok = r.only_keys(x, xp, {"ttl_default", "service_actors"}); !ok)
      return std::unexpected(ok.error());
    GH_TRY(ttl_text, r.string(x, xp, "ttl_default", "15m"));
    auto ttl = identity::parse_duration_s(ttl_text);
    if (!ttl || *ttl <= 0 || *ttl > identity::kTokenTtlSMax)
      return r.error(xp + ".ttl_default",
                     fmt::format("expected a duration of 1s..{}s (90s, 15m, 2h)", identity::kTokenTtlSMax));
    a.exchange_ttl_default_s = *ttl;
    if (const YAML::Node list = x["service_actors"]) {
      if (!list.IsSequence()) return r.error(xp + ".service_actors", "expected a list");
      for (size_t i = 0; i < list.size(); ++i) {
        const std::string sp = fmt::format("{}.service_actors[{}]", xp, i);
        if (auto ok = r.only_keys(list[i], sp, {"name", "allow_groups"}); !ok)
          return std::unexpected(ok.error());
        ServiceActorConfig actor;
        GH_TRY(name, r.string(list[i], sp, "name"));
        GH_TRY(allow, r.strings(list[i], sp, "allow_groups", true));
        if (name.empty()) return r.error(sp + ".name", "must not be empty");
        if (allow.empty()) return r.error(sp + ".allow_groups", "must name at least one group");
        for (const auto& other : a.service_actors) {
          if (other.name == name) return r.error(sp + ".name", "duplicate name '" + name + "'");
        }
        actor.name = name;
        actor.allow_groups = allow;
        a.service_actors.push_back(std::move(actor));
      }
    }
  }
  if (const YAML::Node v = n["reviews"]) {
    const std::string vp = p + ".reviews";
    if (auto ok = r.only_keys(v, vp, {"webhook_url"}); !ok) return std::unexpected(ok.error());
    GH_TRY(url, r.string(v, vp, "webhook_url", ""));
    if (!url.empty() && !url.starts_with("http://") && !url.starts_with("https://"))
      return r.error(vp + ".webhook_url", "expected an http:// or https:// URL");
    a.review_webhook_url = url;
  }
  return std::optional<AdminConfig>(std::move(a));
}

Result<std::string> read_secret(const Reader& r, const YAML::Node& n, const std::string& p) {
  const bool has_file = bool(n["password_file"]);
  const bool has_env = bool(n["password_env"]);
  if (has_file && has_env) return r.error(p, "give password_file or password_env, not both");
  if (has_file) {
    GH_TRY(file, r.string(n, p, "password_file"));
    const std::string path = r.path_of(file);
    std::ifstream in(path, std::ios::binary);
    if (!in) return r.error(p + ".password_file", fmt::format("cannot read {}", path));
    std::stringstream ss;
    ss << in.rdbuf();
    std::string secret = ss.str();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    return secret;
  }
  if (has_env) {
    GH_TRY(var, r.string(n, p, "password_env"));
    const char* value = std::getenv(var.c_str());
    if (value == nullptr) return r.error(p + ".password_env", fmt::format("${} is not set", var));
    return std::string(value);
  }
  return std::string();  // trust authentication upstream
}

// An SSH connection's upstream: where, as whom, with which key or password, and the host key it
// must present. Its guardrails are regexes over exec command lines and mask rules over output.
Result<UpstreamConfig> parse_ssh_upstream(const Reader& r, const YAML::Node& u, const std::string& up,
                                          const Guardrails& g, const std::string& p) {
  if (auto ok = r.only_keys(u, up, {"host", "port", "user", "private_key_file", "password_file",
                                    "password_env", "host_key", "host_key_file"});
      !ok)
    return std::unexpected(ok.error());
  const auto regex_only = [](const SqlRule& rule) {
    return !rule.regex.empty() && rule.statements.empty() && rule.tables.empty() && rule.schemas.empty();
  };
  for (size_t i = 0; i < g.deny.size(); ++i) {
    if (!regex_only(g.deny[i]))
      return r.error(fmt::format("{}.deny[{}]", p, i),
                     "ssh connections deny by regex over the exec command line only (regex:)");
  }
  for (size_t i = 0; i < g.approve.size(); ++i) {
    if (!regex_only(g.approve[i]))
      return r.error(fmt::format("{}.approve[{}]", p, i),
                     "ssh connections hold by regex over the exec command line only (regex:)");
  }
  for (size_t i = 0; i < g.mask.size(); ++i) {
    if (!g.mask[i].columns.empty())
      return r.error(fmt::format("{}.mask[{}].columns", p, i), "ssh output has no columns");
  }
  UpstreamConfig c;
  GH_TRY(host, r.string(u, up, "host"));
  GH_TRY(port, r.integer<uint16_t>(u, up, "port", 22, 1, 65535));
  GH_TRY(user, r.string(u, up, "user"));
  GH_TRY(key_file, r.string(u, up, "private_key_file", ""));
  GH_TRY(password, read_secret(r, u, up));
  if (key_file.empty() == password.empty())
    return r.error(up, "give exactly one of private_key_file, password_file, password_env");
  const bool has_key = bool(u["host_key"]);
  const bool has_key_file = bool(u["host_key_file"]);
  if (has_key == has_key_file)
    return r.error(up, "give exactly one of host_key, host_key_file (the host key gatehouse pins)");
  std::string host_key;
  if (has_key) {
    GH_TRY(text, r.string(u, up, "host_key"));
    host_key = text;
  } else {
    GH_TRY(file, r.string(u, up, "host_key_file"));
    std::ifstream in(r.path_of(file));
    if (!in || !std::getline(in, host_key))
      return r.error(up + ".host_key_file", fmt::format("cannot read {}", r.path_of(file)));
  }
  while (!host_key.empty() && (host_key.back() == '\n' || host_key.back() == '\r' || host_key.back() == ' '))
    host_key.pop_back();
  if (host_key.find(' ') == std::string::npos)
    return r.error(up + (has_key ? ".host_key" : ".host_key_file"),
                   "expected \"<type> <base64>\", e.g. the line of ssh_host_ed25519_key.pub");
  auto address = resolve_host(host, port);
  if (!address) return r.error(up + ".host", address.error().message);
  c.host = host;
  c.port = port;
  c.address = *address;
  c.user = user;
  c.password = password;
  c.private_key_file = key_file.empty() ? std::string() : r.path_of(key_file);
  c.host_key = host_key;
  return c;
}

// An SSH connection's `forwarding:` map. Targets are checked for shape here so that a typo is a
// start-up error rather than a target that never matches.
Result<SshForwarding> parse_ssh_forwarding(const Reader& r, const YAML::Node& n, const std::string& p) {
  SshForwarding f;
  if (!n) return f;
  if (!n.IsMap()) return r.error(p, "expected a map: local, local_targets, remote, agent, x11");
  if (auto ok = r.only_keys(n, p, {"local", "local_targets", "remote", "agent", "x11"}); !ok)
    return std::unexpected(ok.error());
  GH_TRY(local, r.boolean(n, p, "local", false));
  GH_TRY(remote, r.boolean(n, p, "remote", false));
  GH_TRY(targets, r.strings(n, p, "local_targets", false));
  GH_TRY(agent, r.boolean(n, p, "agent", false));
  GH_TRY(x11, r.boolean(n, p, "x11", false));
  if (!targets.empty() && !local)
    return r.error(p + ".local_targets", "needs local: true (direct-tcpip is off)");
  for (size_t i = 0; i < targets.size(); ++i) {
    const std::string& t = targets[i];
    const size_t colon = t.rfind(':');
    uint32_t port = 0;
    const bool port_ok = colon != std::string::npos && colon + 1 < t.size() &&
                         std::from_chars(t.data() + colon + 1, t.data() + t.size(), port).ptr == t.data() + t.size() &&
                         port >= 1 && port <= 65535;
    const std::string_view host(t.data(), colon == std::string::npos ? 0 : colon);
    const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
    if (colon == 0 || !port_ok || (host.find(':') != std::string_view::npos && !bracketed))
      return r.error(fmt::format("{}.local_targets[{}]", p, i),
                     fmt::format("expected host:port (port 1..65535, [::1]:22 for IPv6), got '{}'", t));
  }
  f.local = local;
  f.remote = remote;
  f.agent = agent;
  f.x11 = x11;
  f.local_targets = std::move(targets);
  return f;
}

Result<ConnectionConfig> parse_connection(const Reader& r, const YAML::Node& n,
                                          const std::string& p) {
  if (auto ok = r.only_keys(n, p, {"name", "protocol", "allow_groups", "upstream", "deny", "approve",
                                   "mask", "allow_function_call", "require_claims", "forwarding"});
      !ok)
    return std::unexpected(ok.error());
  ConnectionConfig c;
  GH_TRY(guardrails, parse_guardrails(n, r.source(), p, r.base_dir()));
  c.guardrails = std::move(guardrails);
  GH_TRY(name, r.string(n, p, "name"));
  GH_TRY(protocol, r.string(n, p, "protocol", "postgres"));
  if (protocol != "postgres" && protocol != "ssh") return r.error(p + ".protocol", "supported: postgres, ssh");
  GH_TRY(groups, r.strings(n, p, "allow_groups", true));
  if (groups.empty()) return r.error(p + ".allow_groups", "must name at least one group");
  const YAML::Node u = n["upstream"];
  const std::string up = p + ".upstream";
  if (!u) return r.error(up, "required");
  if (protocol == "ssh") {
    GH_TRY(ssh, parse_ssh_upstream(r, u, up, c.guardrails, p));
    c.upstream = std::move(ssh);
    GH_TRY(forwarding, parse_ssh_forwarding(r, n["forwarding"], p + ".forwarding"));
    c.forwarding = std::move(forwarding);
    GH_TRY(name, r.string(n, p, "name"));
    c.name = name;
    c.protocol = protocol;
    c.allow_groups = groups;
    return c;
  }
  if (n["forwarding"]) return r.error(p + ".forwarding", "only for protocol ssh");
  if (auto ok = r.only_keys(u, up, {"host", "port", "database", "user", "password_file",
                                    "password_env", "tls", "ca_file", "server_name"});
      !ok)
    return std::unexpected(ok.error());
  GH_TRY(host, r.string(u, up, "host"));
  GH_TRY(port, r.integer<uint16_t>(u, up, "port", 5432, 1, 65535));
  GH_TRY(database, r.string(u, up, "database", name));
  GH_TRY(user, r.string(u, up, "user"));
  GH_TRY(password, read_secret(r, u, up));
  GH_TRY(tls, r.string(u, up, "tls", "disable"));
  GH_TRY(ca, r.string(u, up, "ca_file", ""));
  GH_TRY(server_name, r.string(u, up, "server_name", host));
  auto address = resolve_host(host, port);
  if (!address) return r.error(up + ".host", address.error().message);
  c.upstream.tls = tls == "disable"       ? UpstreamTls::kDisable
                   : tls == "require"     ? UpstreamTls::kRequire
                   : tls == "verify-full" ? UpstreamTls::kVerifyFull
                                          : UpstreamTls(255);
  if (c.upstream.tls == UpstreamTls(255))
    return r.error(up + ".tls", fmt::format("expected disable, require or verify-full, got '{}'", tls));
  if (c.upstream.tls == UpstreamTls::kVerifyFull && ca.empty())
    return r.error(up + ".ca_file", "required with tls: verify-full");
  c.name = name;
  c.protocol = protocol;
  c.allow_groups = groups;
  c.upstream.host = host;
  c.upstream.port = port;
  c.upstream.address = *address;
  c.upstream.database = database;
  c.upstream.user = user;
  c.upstream.password = password;
  c.upstream.ca_file = r.path_of(ca);
  c.upstream.server_name = server_name;
  return c;
}

Result<RecordingConfig> parse_recording(const Reader& r, const YAML::Node& n) {
  const std::string p = "recording";
  if (!n) return r.error(p, "required: recording.dir");
  if (auto ok = r.only_keys(n, p, {"enabled", "dir", "flush_interval_ms", "durability", "ring_bytes",
                                   "statement_result_bytes_max", "segment_bytes_max",
                                   "segment_age_s", "checkpoint_interval_s", "node_key_file",
                                   "keyring_file", "anchor_file", "catalog_file"});
      !ok)
    return std::unexpected(ok.error());
  RecordingConfig rc;
  GH_TRY(enabled, r.boolean(n, p, "enabled", true));
  GH_TRY(dir, r.string(n, p, "dir"));
  GH_TRY(flush, r.integer<uint32_t>(n, p, "flush_interval_ms", rc.flush_interval_ms, 1, 60000));
  GH_TRY(durability, r.string(n, p, "durability", "interval"));
  if (durability == "strict") {
    rc.durability = Durability::kStrict;
  } else if (durability != "interval") {
    return r.error(p + ".durability", "must be interval or strict, not '" + durability + "'");
  }
  GH_TRY(result_bytes, r.integer<uint64_t>(n, p, "statement_result_bytes_max",
                                           rc.statement_result_bytes_max, 0, 1ull << 40));
  rc.statement_result_bytes_max = result_bytes;
  GH_TRY(ring, r.integer<uint32_t>(n, p, "ring_bytes", rc.ring_bytes, 262144, 1u << 30));
  if ((ring & (ring - 1)) != 0) return r.error(p + ".ring_bytes", "must be a power of two");
  GH_TRY(segment, r.integer<uint64_t>(n, p, "segment_bytes_max", rc.segment_bytes_max, 4096,
                                      1ull << 40));
  GH_TRY(age, r.integer<uint32_t>(n, p, "segment_age_s", rc.segment_age_s, 1, 7 * 24 * 3600));
  GH_TRY(checkpoint, r.integer<uint32_t>(n, p, "checkpoint_interval_s", rc.checkpoint_interval_s, 1, 3600));
  GH_TRY(node_key, r.string(n, p, "node_key_file", "node.key"));
  GH_TRY(keyring, r.string(n, p, "keyring_file", "keyring.json"));
  GH_TRY(anchor, r.string(n, p, "anchor_file", ""));
  GH_TRY(catalog, r.string(n, p, "catalog_file", ""));
  rc.segment_age_s = age;
  rc.checkpoint_interval_s = checkpoint;
  rc.node_key_file = r.path_of(node_key);
  rc.keyring_file = r.path_of(keyring);
  if (!anchor.empty()) rc.anchor_file = r.path_of(anchor);
  rc.enabled = enabled;
  rc.dir = r.path_of(dir);
  rc.catalog_file = catalog.empty() ? rc.dir + "/catalog.sqlite" : r.path_of(catalog);
  rc.flush_interval_ms = flush;
  rc.ring_bytes = ring;
  rc.segment_bytes_max = segment;
  return rc;
}

std::string default_node_id() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "gatehouse";
  return host;
}

Result<Config> parse_tree(const Reader& r, const YAML::Node& root) {
  if (auto ok = r.only_keys(root, "", {"node_id", "engine", "listeners", "identity", "connections",
                                      "recording", "admin"});
      !ok)
    return std::unexpected(ok.error());
  Config c;
  GH_TRY(node_id, r.string(root, "", "node_id", default_node_id()));
  GH_TRY(engine, parse_engine(r, root["engine"]));
  c.node_id = node_id;
  c.engine = engine;

  const YAML::Node listeners = root["listeners"];
  if (!listeners || !listeners.IsSequence() || listeners.size() == 0)
    return r.error("listeners", "required: a list with at least one listener");
  std::set<std::string> names;
  for (size_t i = 0; i < listeners.size(); ++i) {
    GH_TRY(l, parse_listener(r, listeners[i], fmt::format("listeners[{}]", i)));
    if (!names.insert(l.name).second)
      return r.error(fmt::format("listeners[{}].name", i), "duplicate name '" + l.name + "'");
    c.listeners.push_back(std::move(l));
  }
  GH_TRY(identity, parse_identity(r, root["identity"]));
  c.identity = std::move(identity);

  const YAML::Node connections = root["connections"];
  if (!connections || !connections.IsSequence() || connections.size() == 0)
    return r.error("connections", "required: a list with at least one connection");
  names.clear();
  for (size_t i = 0; i < connections.size(); ++i) {
    const YAML::Node node = connections[i];
    GH_TRY(conn, parse_connection(r, node, fmt::format("connections[{}]", i)));
    // Read here because the rules are checked against the issuers' provenance claims.
    GH_TRY(rules, parse_claim_rules(r, node["require_claims"],
                                    fmt::format("connections[{}].require_claims", i), c.identity));
    conn.require_claims = std::move(rules);
    if (!names.insert(conn.name).second)
      return r.error(fmt::format("connections[{}].name", i), "duplicate name '" + conn.name + "'");
    c.connections.push_back(std::move(conn));
  }
  GH_TRY(recording, parse_recording(r, root["recording"]));
  c.recording = recording;
  if (c.identity.revocations_file.empty())
    c.identity.revocations_file = (std::filesystem::path(c.recording.dir) / "revocations.jsonl").string();
  GH_TRY(admin, parse_admin(r, root["admin"], c.listeners, c.identity));
  c.admin = std::move(admin);
  for (size_t i = 0; i < c.connections.size(); ++i) {
    // Held statements are decided on the admin API: without it they could only time out.
    if (!c.connections[i].guardrails.approve.empty() && !c.admin)
      return r.error(fmt::format("connections[{}].approve", i),
                     "approval reviews are decided on the admin API: configure admin:");
  }
  return c;
}

}  // namespace

const ConnectionConfig* Config::find_connection(std::string_view name) const {
  for (const auto& c : connections) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Result<Config> parse(std::string_view yaml_text, const std::string& source,
                     const std::filesystem::path& base_dir) {
  const Reader r(source, base_dir);
  try {
    const YAML::Node root = YAML::Load(std::string(yaml_text));
    if (!root.IsMap()) return r.error("", "expected a mapping at the top level");
    auto c = parse_tree(r, root);
    if (c) c->source = source;
    return c;
  } catch (const YAML::Exception& e) {
    return fail(fmt::format("{}: line {}, column {}: {}", source, e.mark.line + 1,
                            e.mark.column + 1, e.msg));
  }
}

Result<Config> load(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(fmt::format("{}: cannot read the configuration file", file.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  const auto base = std::filesystem::absolute(file).parent_path();
  return parse(ss.str(), file.string(), base);
}

Result<SocketAddress> resolve_host(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0)
    return fail(fmt::format("cannot resolve '{}': {}", host, gai_strerror(rc)));
  SocketAddress a;
  a.text = host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                               : fmt::format("{}:{}", host, port);
  std::memcpy(&a.storage, found->ai_addr, found->ai_addrlen);
  a.length = found->ai_addrlen;
  freeaddrinfo(found);
  if (a.storage.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a.storage);
    a.loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
  } else if (a.storage.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    a.loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
  }
  return a;
}

Result<SocketAddress> resolve_address(std::string_view host_port) {
  std::string host;
  std::string_view port_text;
  if (host_port.starts_with('[')) {
    const size_t close = host_port.find(']');
    if (close == std::string_view::npos || close + 1 >= host_port.size() ||
        host_port[close + 1] != ':')
      return fail(fmt::format("expected [host]:port, got '{}'", host_port));
    host = std::string(host_port.substr(1, close - 1));
    port_text = host_port.substr(close + 2);
  } else {
    const size_t colon = host_port.rfind(':');
    if (colon == std::string_view::npos || colon == 0)
      return fail(fmt::format("expected host:port, got '{}'", host_port));
    host = std::string(host_port.substr(0, colon));
    port_text = host_port.substr(colon + 1);
  }
  uint32_t port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535)
    return fail(fmt::format("bad port in '{}'", host_port));
  return resolve_host(host, uint16_t(port));
}

bool groups_allowed(const ConnectionConfig& connection, const std::vector<std::string>& groups) {
  for (const auto& g : groups) {
    if (std::find(connection.allow_groups.begin(), connection.allow_groups.end(), g) !=
        connection.allow_groups.end())
      return true;
  }
  return false;
}

}  // namespace gh::config
