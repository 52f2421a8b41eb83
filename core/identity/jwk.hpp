// JSON Web Keys (RFC 7517) and key sets: public verification keys for the algorithms in jwa.hpp,
// and the RFC 7638 thumbprint that names the built-in issuer's key.
// Must not depend on protocols or I/O beyond reading one JWKS file at start-up.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/identity/jwa.hpp"
#include "core/identity/ossl.hpp"

namespace gh::identity {

struct PublicKey {
  std::string kid;               // "" when the JWK has no "kid"
  KeyType type = KeyType::kRsa;  // meaningful only when usable()
  std::optional<Algorithm> alg;  // the JWK's own "alg", when it has one
  ossl::SharedPkey pkey;         // null when the key is not usable for verification here
  std::string unusable_reason;   // why pkey is null: kept to refuse a token with a precise reason

  bool usable() const { return pkey != nullptr; }
};

// One JWK. A malformed key, or one of a type we use that would be unsafe (short RSA modulus,
// private members, an "alg" that contradicts its "kty"), is an error. A well-formed key that is
// simply not for us (another kty or curve, "use": "enc", an algorithm we do not accept) comes back
// with usable() false and the reason, so a JWKS shared with other services still loads.
gh::Result<PublicKey> parse_jwk(const nlohmann::json& jwk);

// A JWK Set (RFC 7517 §5). Refused if it holds no usable key or two usable keys share a "kid".
// Errors name the key: "keys[1] (kid \"a\"): reason".
gh::Result<std::vector<PublicKey>> parse_jwks(std::string_view text);
// The same, from a file; errors start with the path.
gh::Result<std::vector<PublicKey>> load_jwks_file(const std::filesystem::path& path);

// The 32-byte raw public key of an Ed25519 key.
gh::Result<std::string> ed25519_public_raw(EVP_PKEY* key);
// RFC 7638 thumbprint (SHA-256, base64url) of an Ed25519 public key: the hash of
// {"crv":"Ed25519","kty":"OKP","x":"..."}, required members in lexicographic order (RFC 8037 §2).
gh::Result<std::string> ed25519_thumbprint(std::string_view public_raw);
// The public JWK of an Ed25519 key as the built-in issuer publishes it (alg EdDSA, use sig).
nlohmann::json ed25519_public_jwk(std::string_view public_raw, std::string_view kid);

}  // namespace gh::identity
