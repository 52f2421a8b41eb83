// The JWS algorithms gatehouse accepts (RFC 7518 §3, RFC 8037 §3.1) and their signature checks.
// Must not depend on protocols or I/O; OpenSSL 3 EVP only.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace gh::identity {

// Only asymmetric algorithms exist here: "none" and the HS* family cannot even be named, so no
// configuration can allow them (RFC 8725 §3.1, §3.2).
enum class Algorithm : uint8_t { kRs256, kPs256, kEs256, kEdDsa };

std::optional<Algorithm> algorithm_from_name(std::string_view name);
std::string_view algorithm_name(Algorithm alg);

// The key types a JWK may describe, restricted to the ones the algorithms above use.
enum class KeyType : uint8_t { kRsa, kEcP256, kEd25519 };

std::string_view key_type_name(KeyType type);  // "RSA", "EC P-256", "OKP Ed25519"
// Whether `alg` is defined for keys of `type` (RFC 8725 §3.1: each key is used with one family).
bool algorithm_fits(Algorithm alg, KeyType type);

// Signature sizes fixed by the algorithm: ES256 is R || S, 32 bytes each (RFC 7518 §3.4), and an
// Ed25519 signature is 64 bytes (RFC 8032 §5.1.6).
inline constexpr size_t kEs256SignatureBytes = 64;
inline constexpr size_t kEd25519SignatureBytes = 64;
inline constexpr size_t kP256CoordinateBytes = 32;
inline constexpr size_t kEd25519PublicKeyBytes = 32;

// Checks `signature` (decoded from base64url) over the JWS signing input with `key`, whose type the
// caller has already matched to `alg`. The error says why: wrong length, malformed, or no match.
gh::Result<void> verify_signature(Algorithm alg, EVP_PKEY* key, std::string_view signing_input,
                                  std::string_view signature);

// Ed25519 signature over `message` (the built-in issuer's only signing operation).
gh::Result<std::string> sign_ed25519(EVP_PKEY* key, std::string_view message);

}  // namespace gh::identity
