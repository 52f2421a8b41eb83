// The JWS algorithms gatehouse accepts (RFC 7518 §3, RFC 8037 §3.1) and their signature checks.
// Must not depend on protocols or I/O; OpenSSL 3 EVP only.
#include "core/identity/jwa.hpp"

#include <fmt/format.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>

#include "core/identity/ossl.hpp"

namespace gh::identity {
namespace {

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// RFC 7518 §3.4: the JWS signature is R || S as fixed-width big-endian integers; OpenSSL verifies
// the DER SEQUENCE { r INTEGER, s INTEGER } of X9.62, so the raw form is re-encoded here.
gh::Result<std::string> es256_raw_to_der(std::string_view raw) {
  if (raw.size() != kEs256SignatureBytes) {
    return gh::fail(
        fmt::format("ES256 signature is {} bytes; JWS uses raw R||S of {} bytes (RFC 7518 §3.4)",
                    raw.size(), kEs256SignatureBytes));
  }
  constexpr int kHalf = static_cast<int>(kEs256SignatureBytes / 2);
  ossl::Bignum r(BN_bin2bn(bytes(raw), kHalf, nullptr));
  ossl::Bignum s(BN_bin2bn(bytes(raw) + kHalf, kHalf, nullptr));
  ossl::EcdsaSig sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    return gh::fail("ES256 signature: out of memory: " + ossl::drain_errors());
  }
  // ECDSA_SIG_set0 took ownership of r and s.
  (void)r.release();
  (void)s.release();
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(sig.get(), &der);
  if (der_len <= 0) return gh::fail("ES256 signature cannot be encoded: " + ossl::drain_errors());
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(der_len));
  OPENSSL_free(der);
  return out;
}

}  // namespace

std::optional<Algorithm> algorithm_from_name(std::string_view name) {
  if (name == "RS256") return Algorithm::kRs256;
  if (name == "PS256") return Algorithm::kPs256;
  if (name == "ES256") return Algorithm::kEs256;
  if (name == "EdDSA") return Algorithm::kEdDsa;
  return std::nullopt;
}

std::string_view algorithm_name(Algorithm alg) {
  switch (alg) {
    case Algorithm::kRs256:
      return "RS256";
    case Algorithm::kPs256:
      return "PS256";
    case Algorithm::kEs256:
      return "ES256";
    case Algorithm::kEdDsa:
      return "EdDSA";
  }
  return "?";
}

std::string_view key_type_name(KeyType type) {
  switch (type) {
    case KeyType::kRsa:
      return "RSA";
    case KeyType::kEcP256:
      return "EC P-256";
    case KeyType::kEd25519:
      return "OKP Ed25519";
  }
  return "?";
}

bool algorithm_fits(Algorithm alg, KeyType type) {
  switch (alg) {
    case Algorithm::kRs256:
    case Algorithm::kPs256:
      return type == KeyType::kRsa;
    case Algorithm::kEs256:
      return type == KeyType::kEcP256;
    case Algorithm::kEdDsa:
      return type == KeyType::kEd25519;
  }
  return false;
}

gh::Result<void> verify_signature(Algorithm alg, EVP_PKEY* key, std::string_view signing_input,
                                  std::string_view signature) {
  std::string der;
  std::string_view checked = signature;
  const EVP_MD* md = ossl::sha256();
  switch (alg) {
    case Algorithm::kEs256: {
      auto converted = es256_raw_to_der(signature);
      if (!converted) return std::unexpected(converted.error());
      der = std::move(*converted);
      checked = der;
      break;
    }
    case Algorithm::kEdDsa:
      if (signature.size() != kEd25519SignatureBytes) {
        return gh::fail(fmt::format("EdDSA signature is {} bytes, not {}", signature.size(),
                                    kEd25519SignatureBytes));
      }
      md = nullptr;  // Ed25519 hashes internally (PureEdDSA); OpenSSL requires no digest.
      break;
    case Algorithm::kRs256:
    case Algorithm::kPs256:
      // RFC 8017 §8.1.2/§8.2.2: the signature is exactly as long as the modulus. OpenSSL would
      // also take a shorter one (leading zeros dropped); a second encoding of one signature is
      // refused here instead.
      if (const int modulus_bytes = EVP_PKEY_get_size(key);
          modulus_bytes <= 0 || signature.size() != static_cast<size_t>(modulus_bytes)) {
        return gh::fail(fmt::format("{} signature is {} bytes; the key's modulus is {} bytes",
                                    algorithm_name(alg), signature.size(), modulus_bytes));
      }
      break;
  }
  if (alg != Algorithm::kEdDsa && md == nullptr) {
    return gh::fail("SHA-256 is unavailable: " + ossl::drain_errors());
  }

  ossl::MdCtx ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key) != 1) {
    return gh::fail(
        fmt::format("{} verification cannot start: {}", algorithm_name(alg), ossl::drain_errors()));
  }
  if (alg == Algorithm::kPs256) {
    // RFC 7518 §3.5: MGF1 with SHA-256, and a salt as long as the hash output, nothing else.
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1) {
      return gh::fail("PS256 parameters rejected: " + ossl::drain_errors());
    }
  } else if (alg == Algorithm::kRs256) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
      return gh::fail("RS256 parameters rejected: " + ossl::drain_errors());
    }
  }
  const int rc = EVP_DigestVerify(ctx.get(), bytes(checked), checked.size(), bytes(signing_input),
                                  signing_input.size());
  if (rc != 1) {
    // 0 is a mismatch, negative a malformed signature; the audit reason is the same either way.
    ossl::drain_errors();
    return gh::fail(fmt::format("{} signature does not verify", algorithm_name(alg)));
  }
  return {};
}

gh::Result<std::string> sign_ed25519(EVP_PKEY* key, std::string_view message) {
  ossl::MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key) != 1) {
    return gh::fail("Ed25519 signing cannot start: " + ossl::drain_errors());
  }
  std::string signature(kEd25519SignatureBytes, '\0');
  size_t length = signature.size();
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                     bytes(message), message.size()) != 1 ||
      length != kEd25519SignatureBytes) {
    return gh::fail("Ed25519 signing failed: " + ossl::drain_errors());
  }
  return signature;
}

}  // namespace gh::identity
