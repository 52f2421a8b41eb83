// Test support for identity: in-process keys, public JWKs and JWS signing with every algorithm.
// Written independently of core/identity so that a shared mistake cannot hide in both.
#include "tests/unit/core/identity/test_keys.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdlib.h>

#include <fstream>
#include <vector>

#include "core/base64.hpp"

namespace gh::identity::testing {
namespace {

[[noreturn]] void die(const char* what) {
  ERR_print_errors_fp(stderr);
  std::fprintf(stderr, "test support: %s failed\n", what);
  std::abort();
}

Key own(EVP_PKEY* key, const char* what) {
  if (key == nullptr) die(what);
  return Key(key, EVP_PKEY_free);
}

std::string bn_bytes(EVP_PKEY* key, const char* param, int pad) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, param, &bn) != 1) die(param);
  std::string out(pad > 0 ? static_cast<size_t>(pad) : static_cast<size_t>(BN_num_bytes(bn)), '\0');
  auto* data = reinterpret_cast<unsigned char*>(out.data());
  if (pad > 0 ? BN_bn2binpad(bn, data, pad) != pad : BN_bn2bin(bn, data) < 0) die("bn2bin");
  BN_free(bn);
  return out;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

}  // namespace

Key generate_rsa(int bits) {
  return own(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits)), "RSA keygen");
}
Key generate_p256() { return own(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), "EC keygen"); }
Key generate_ed25519() {
  return own(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), "Ed25519 keygen");
}

nlohmann::json public_jwk(EVP_PKEY* key, std::string_view kid, std::string_view alg) {
  nlohmann::json jwk;
  if (EVP_PKEY_is_a(key, "RSA")) {
    jwk["kty"] = "RSA";
    jwk["n"] = b64(bn_bytes(key, OSSL_PKEY_PARAM_RSA_N, 0));
    jwk["e"] = b64(bn_bytes(key, OSSL_PKEY_PARAM_RSA_E, 0));
  } else if (EVP_PKEY_is_a(key, "EC")) {
    jwk["kty"] = "EC";
    jwk["crv"] = "P-256";
    jwk["x"] = b64(bn_bytes(key, OSSL_PKEY_PARAM_EC_PUB_X, 32));
    jwk["y"] = b64(bn_bytes(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32));
  } else {
    unsigned char raw[32];
    size_t n = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(key, raw, &n) != 1) die("raw public key");
    jwk["kty"] = "OKP";
    jwk["crv"] = "Ed25519";
    jwk["x"] = b64(std::string_view(reinterpret_cast<const char*>(raw), n));
  }
  if (!kid.empty()) jwk["kid"] = std::string(kid);
  if (!alg.empty()) jwk["alg"] = std::string(alg);
  return jwk;
}

std::string sign(std::string_view alg, EVP_PKEY* key, std::string_view input, EcdsaForm form) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  // The key decides the digest, so that tests can put any "alg" over any key.
  const EVP_MD* md = EVP_PKEY_is_a(key, "ED25519") ? nullptr : EVP_sha256();
  if (EVP_DigestSignInit(ctx, &pctx, md, nullptr, key) != 1) die("sign init");
  if (alg == "PS256" && EVP_PKEY_is_a(key, "RSA")) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1) {
      die("PSS parameters");
    }
  }
  size_t length = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  if (EVP_DigestSign(ctx, nullptr, &length, data, input.size()) != 1) die("sign size");
  std::string sig(length, '\0');
  if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &length, data,
                     input.size()) != 1) {
    die("sign");
  }
  sig.resize(length);
  EVP_MD_CTX_free(ctx);
  if (!EVP_PKEY_is_a(key, "EC") || form == EcdsaForm::kDer) return sig;

  const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* ecdsa = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
  if (ecdsa == nullptr) die("d2i_ECDSA_SIG");
  std::string raw(64, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa), out, 32) != 32 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa), out + 32, 32) != 32) {
    die("r||s");
  }
  ECDSA_SIG_free(ecdsa);
  return raw;
}

std::string hmac_sha256(std::string_view secret, std::string_view input) {
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t length = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(), secret.size(),
                reinterpret_cast<const unsigned char*>(input.data()), input.size(), out, sizeof out,
                &length) == nullptr) {
    die("HMAC");
  }
  return std::string(reinterpret_cast<const char*>(out), length);
}

std::string public_pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (PEM_write_bio_PUBKEY(bio, key) != 1) die("PEM public");
  return bio_text(bio);
}

std::string private_pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    die("PEM private");
  }
  return bio_text(bio);
}

std::string b64(std::string_view bytes) { return gh::base64url_encode(bytes); }

std::string make_token(const nlohmann::json& header, const nlohmann::json& claims, EVP_PKEY* key,
                       EcdsaForm form) {
  const std::string alg = header.value("alg", "");
  std::string input = b64(header.dump()) + "." + b64(claims.dump());
  return input + "." + b64(sign(alg, key, input, form));
}

std::string make_token_text(std::string_view header_text, std::string_view claims_text,
                            std::string_view alg, EVP_PKEY* key) {
  std::string input = b64(header_text) + "." + b64(claims_text);
  return input + "." + b64(sign(alg, key, input));
}

std::string segment(std::string_view token, int index) {
  size_t start = 0;
  for (int i = 0; i < index; ++i) start = token.find('.', start) + 1;
  const size_t end = token.find('.', start);
  return std::string(token.substr(start, end == std::string_view::npos ? end : end - start));
}

std::string with_segment(std::string_view token, int index, std::string_view replacement) {
  std::string parts[3] = {segment(token, 0), segment(token, 1), segment(token, 2)};
  parts[index] = std::string(replacement);
  return parts[0] + "." + parts[1] + "." + parts[2];
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "gh-identity-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) die("mkdtemp");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::filesystem::path TempDir::write(std::string_view name, std::string_view text) const {
  const auto file = path_ / name;
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << text;
  return file;
}

}  // namespace gh::identity::testing
