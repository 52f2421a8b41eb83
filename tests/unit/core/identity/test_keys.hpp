// Test support for identity: in-process RSA / P-256 / Ed25519 keys, their public JWKs, and JWS
// signing with every algorithm (the product itself only ever signs with Ed25519).
// Written independently of core/identity so that a shared mistake cannot hide in both.
#pragma once

#include <openssl/evp.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace gh::identity::testing {

using Key = std::shared_ptr<EVP_PKEY>;

Key generate_rsa(int bits);
Key generate_p256();
Key generate_ed25519();

// The public JWK of `key` with "kid" (and "alg" when not empty), built from OpenSSL parameters.
nlohmann::json public_jwk(EVP_PKEY* key, std::string_view kid, std::string_view alg = {});

enum class EcdsaForm { kRaw, kDer };
// The JWS signature of `input` under `alg` ("RS256", "PS256", "ES256", "EdDSA"). ES256 comes back
// as raw R||S unless kDer asks for the (wrong for JWS) DER form.
std::string sign(std::string_view alg, EVP_PKEY* key, std::string_view input,
                 EcdsaForm form = EcdsaForm::kRaw);
std::string hmac_sha256(std::string_view secret, std::string_view input);
// The PEM SubjectPublicKeyInfo of `key`: what an attacker would use as an HMAC secret.
std::string public_pem(EVP_PKEY* key);
std::string private_pem(EVP_PKEY* key);

std::string b64(std::string_view bytes);
// header.payload.signature from JSON values (compact dumps) or from raw texts.
std::string make_token(const nlohmann::json& header, const nlohmann::json& claims, EVP_PKEY* key,
                       EcdsaForm form = EcdsaForm::kRaw);
std::string make_token_text(std::string_view header_text, std::string_view claims_text,
                            std::string_view alg, EVP_PKEY* key);

// Replaces one segment (0, 1, 2) of a compact token.
std::string with_segment(std::string_view token, int index, std::string_view segment);
std::string segment(std::string_view token, int index);

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(std::string_view name, std::string_view text) const;

 private:
  std::filesystem::path path_;
};

}  // namespace gh::identity::testing
