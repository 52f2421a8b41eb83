// The built-in token issuer: the gateway's own Ed25519 key, so that demos and tests need no
// external identity provider. Must not depend on protocols or I/O beyond its two key files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/identity/ossl.hpp"

namespace gh::identity {

// Writes a new Ed25519 private key (PEM, PKCS#8, mode 0600) and the matching public JWKS
// (kid = RFC 7638 JWK thumbprint, alg EdDSA, use sig). Refuses to overwrite an existing key file
// (a lost signing key cannot be recovered); the JWKS file is replaced atomically. Returns the kid.
gh::Result<std::string> keygen(const std::filesystem::path& key_file,
                               const std::filesystem::path& jwks_file);

struct TokenRequest {
  std::string subject;
  std::vector<std::string> groups;  // written as the "groups" claim when not empty
  int64_t ttl_s = 900;              // 1 .. kTokenTtlSMax
  // Delegation order, EARLIEST first; the last one becomes the outermost "act" (RFC 8693 §4.1).
  std::vector<std::string> actors;
  std::string audience;
  std::string issuer;
  // Token exchange: the ids of the tokens this one derives from, earliest first ("gh_lineage"),
  // and the connections it is narrowed to ("gh_connections"); neither is written when empty/unset.
  std::vector<std::string> lineage;
  std::optional<std::vector<std::string>> connections;
  // More top-level claims (CI provenance: repository, workflow, run id...). Must be an object
  // and must not name a claim the minter sets itself (iss sub aud exp nbf iat jti act groups
  // gh_lineage gh_connections).
  nlohmann::json extra_claims = nlohmann::json::object();
};

struct IssuedToken {
  std::string token;     // compact JWS
  std::string token_id;  // its "jti"
  int64_t expires_at = 0;
};

class TokenMinter {
 public:
  // Reads an unencrypted PKCS#8 PEM Ed25519 private key; the kid is derived from it (thumbprint).
  static gh::Result<TokenMinter> load(const std::filesystem::path& key_file);

  // A compact EdDSA JWS: header {alg, kid, typ JWT}; claims iss, sub, aud, iat = nbf = now_s,
  // exp = now_s + ttl_s, a random 128-bit hex jti, groups, nested act, extra claims.
  // Thread-safe (const; the key is only read).
  gh::Result<std::string> issue(const TokenRequest& request, int64_t now_s) const;
  // The same, with the jti and expiry it chose.
  gh::Result<IssuedToken> issue_token(const TokenRequest& request, int64_t now_s) const;

  const std::string& key_id() const;
  // {"keys":[the public JWK]}: what a Validator, or anyone verifying our tokens, needs.
  nlohmann::json public_jwks() const;

 private:
  TokenMinter(ossl::SharedPkey key, std::string public_raw, std::string kid);
  ossl::SharedPkey key_;
  std::string public_raw_;
  std::string kid_;
};

}  // namespace gh::identity
