// JSON Web Keys (RFC 7517) and key sets: public verification keys for the algorithms in jwa.hpp,
// and the RFC 7638 thumbprint that names the built-in issuer's key.
// Must not depend on protocols or I/O beyond reading one JWKS file at start-up.
#include "core/identity/jwk.hpp"

#include <fmt/format.h>
#include <openssl/core_names.h>
#include <openssl/obj_mac.h>

#include <algorithm>
#include <array>

#include "core/base64.hpp"
#include "core/identity/files.hpp"
#include "core/identity/json_object.hpp"
#include "core/identity/limits.hpp"

namespace gh::identity {
namespace {

using json = nlohmann::json;

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// A required base64url member (RFC 7518 §6: key parameters are base64url without padding).
gh::Result<std::string> b64_member(const json& jwk, const char* name) {
  const auto it = jwk.find(name);
  if (it == jwk.end() || !it->is_string()) {
    return gh::fail(fmt::format("member \"{}\" is missing or not a string", name));
  }
  const auto& text = it->get_ref<const std::string&>();
  auto decoded = text.find('=') == std::string::npos ? gh::base64url_decode(text) : std::nullopt;
  if (!decoded || decoded->empty()) {
    return gh::fail(fmt::format("member \"{}\" is not non-empty unpadded base64url", name));
  }
  return std::move(*decoded);
}

// An optional string member: nullopt when absent, an error when present with another type.
gh::Result<std::optional<std::string>> optional_string(const json& jwk, const char* name) {
  const auto it = jwk.find(name);
  if (it == jwk.end()) return std::optional<std::string>();
  if (!it->is_string()) return gh::fail(fmt::format("member \"{}\" is not a string", name));
  return std::optional<std::string>(it->get<std::string>());
}

gh::Result<void> check_public(EVP_PKEY* key, std::string_view what) {
  ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  if (!ctx || EVP_PKEY_public_check(ctx.get()) != 1) {
    return gh::fail(fmt::format("{} public key fails validation: {}", what, ossl::drain_errors()));
  }
  return {};
}

gh::Result<ossl::Pkey> from_params(const char* type, OSSL_PARAM_BLD* bld) {
  ossl::Params params(OSSL_PARAM_BLD_to_param(bld));
  ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return gh::fail(fmt::format("{} key cannot be built: {}", type, ossl::drain_errors()));
  }
  return ossl::Pkey(raw);
}

// RFC 7518 §6.3.1: modulus "n" and exponent "e" as unsigned big-endian integers.
gh::Result<ossl::Pkey> rsa_key(const json& jwk) {
  auto n = b64_member(jwk, "n");
  if (!n) return std::unexpected(n.error());
  auto e = b64_member(jwk, "e");
  if (!e) return std::unexpected(e.error());
  ossl::Bignum n_bn(BN_bin2bn(bytes(*n), static_cast<int>(n->size()), nullptr));
  ossl::Bignum e_bn(BN_bin2bn(bytes(*e), static_cast<int>(e->size()), nullptr));
  ossl::ParamBld bld(OSSL_PARAM_BLD_new());
  if (!n_bn || !e_bn || !bld) return gh::fail("out of memory: " + ossl::drain_errors());
  // Checked before building anything: a huge modulus would make every verification slow.
  const int bits = BN_num_bits(n_bn.get());
  if (bits < kRsaModulusBitsMin || bits > kRsaModulusBitsMax) {
    return gh::fail(fmt::format("RSA modulus is {} bits; {} to {} are accepted (RFC 7518 §3.3)",
                                bits, kRsaModulusBitsMin, kRsaModulusBitsMax));
  }
  if (OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n_bn.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e_bn.get()) != 1) {
    return gh::fail("out of memory: " + ossl::drain_errors());
  }
  auto key = from_params("RSA", bld.get());
  if (!key) return key;
  if (auto checked = check_public(key->get(), "RSA"); !checked) {
    return std::unexpected(checked.error());
  }
  return key;
}

// RFC 7518 §6.2.1: "x" and "y" are each exactly the coordinate size of the curve, never shortened.
gh::Result<ossl::Pkey> ec_p256_key(const json& jwk) {
  auto x = b64_member(jwk, "x");
  if (!x) return std::unexpected(x.error());
  auto y = b64_member(jwk, "y");
  if (!y) return std::unexpected(y.error());
  if (x->size() != kP256CoordinateBytes || y->size() != kP256CoordinateBytes) {
    return gh::fail(fmt::format("P-256 coordinates must be {} bytes each, got {} and {}",
                                kP256CoordinateBytes, x->size(), y->size()));
  }
  // SEC 1 §2.3.3 uncompressed point: 0x04 || X || Y.
  std::string point(1, '\x04');
  point += *x;
  point += *y;
  ossl::ParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1,
                                      0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return gh::fail("out of memory: " + ossl::drain_errors());
  }
  auto key = from_params("EC", bld.get());
  if (!key) return key;
  // The point must lie on the curve: an off-curve point invites invalid-curve attacks.
  if (auto checked = check_public(key->get(), "EC P-256"); !checked) {
    return std::unexpected(checked.error());
  }
  return key;
}

// RFC 8037 §2: "x" is the 32-byte public key.
gh::Result<ossl::Pkey> ed25519_key(const json& jwk) {
  auto x = b64_member(jwk, "x");
  if (!x) return std::unexpected(x.error());
  if (x->size() != kEd25519PublicKeyBytes) {
    return gh::fail(
        fmt::format("Ed25519 \"x\" must be {} bytes, got {}", kEd25519PublicKeyBytes, x->size()));
  }
  ossl::Pkey key(EVP_PKEY_new_raw_public_key_ex(nullptr, "ED25519", nullptr, bytes(*x), x->size()));
  if (!key) return gh::fail("Ed25519 key cannot be built: " + ossl::drain_errors());
  return key;
}

PublicKey unusable(std::string kid, std::string reason) {
  PublicKey key;
  key.kid = std::move(kid);
  key.unusable_reason = std::move(reason);
  return key;
}

}  // namespace

gh::Result<PublicKey> parse_jwk(const json& jwk) {
  if (!jwk.is_object()) return gh::fail("not a JSON object");
  auto kty = optional_string(jwk, "kty");
  if (!kty) return std::unexpected(kty.error());
  if (!*kty) return gh::fail("member \"kty\" is missing");
  auto kid = optional_string(jwk, "kid");
  if (!kid) return std::unexpected(kid.error());
  auto use = optional_string(jwk, "use");
  if (!use) return std::unexpected(use.error());
  auto alg_name = optional_string(jwk, "alg");
  if (!alg_name) return std::unexpected(alg_name.error());
  std::string key_id = kid->value_or("");

  // A published key set holds public keys only; a private member means the wrong file was used.
  if (jwk.contains("d"))
    return gh::fail("holds private key material (\"d\"); publish public keys only");

  // RFC 7517 §4.2 and §4.3: the key must be meant for signatures / verification.
  if (*use && **use != "sig") {
    return unusable(std::move(key_id), fmt::format("its \"use\" is {}, not \"sig\"", quote(**use)));
  }
  if (const auto ops = jwk.find("key_ops"); ops != jwk.end()) {
    if (!ops->is_array() ||
        !std::all_of(ops->begin(), ops->end(), [](const json& op) { return op.is_string(); })) {
      return gh::fail("member \"key_ops\" is not an array of strings");
    }
    if (std::find(ops->begin(), ops->end(), json("verify")) == ops->end()) {
      return unusable(std::move(key_id), "its \"key_ops\" do not include \"verify\"");
    }
  }

  std::optional<KeyType> type;
  if (**kty == "RSA") {
    type = KeyType::kRsa;
  } else if (**kty == "EC" || **kty == "OKP") {
    auto crv = optional_string(jwk, "crv");
    if (!crv) return std::unexpected(crv.error());
    if (!*crv) return gh::fail("member \"crv\" is missing");
    if (**kty == "EC" && **crv == "P-256") type = KeyType::kEcP256;
    if (**kty == "OKP" && **crv == "Ed25519") type = KeyType::kEd25519;
    if (!type) {
      return unusable(std::move(key_id),
                      fmt::format("kty {} curve {} is not accepted", quote(**kty), quote(**crv)));
    }
  } else {
    return unusable(std::move(key_id), fmt::format("kty {} is not accepted", quote(**kty)));
  }

  std::optional<Algorithm> alg;
  if (*alg_name) {
    alg = algorithm_from_name(**alg_name);
    if (!alg) {
      return unusable(std::move(key_id),
                      fmt::format("its \"alg\" {} is not accepted", quote(**alg_name)));
    }
    if (!algorithm_fits(*alg, *type)) {
      return gh::fail(fmt::format("its \"alg\" {} contradicts its key type {}", **alg_name,
                                  key_type_name(*type)));
    }
  }

  gh::Result<ossl::Pkey> pkey = gh::fail("unreachable");
  switch (*type) {
    case KeyType::kRsa:
      pkey = rsa_key(jwk);
      break;
    case KeyType::kEcP256:
      pkey = ec_p256_key(jwk);
      break;
    case KeyType::kEd25519:
      pkey = ed25519_key(jwk);
      break;
  }
  if (!pkey) return std::unexpected(pkey.error());

  PublicKey key;
  key.kid = std::move(key_id);
  key.type = *type;
  key.alg = alg;
  key.pkey = ossl::share(std::move(*pkey));
  return key;
}

gh::Result<std::vector<PublicKey>> parse_jwks(std::string_view text) {
  auto set = parse_json_object(text, "JWKS");
  if (!set) return std::unexpected(set.error());
  const auto keys = set->find("keys");
  if (keys == set->end() || !keys->is_array()) return gh::fail("JWKS has no \"keys\" array");
  if (keys->empty()) return gh::fail("JWKS \"keys\" is empty");

  std::vector<PublicKey> out;
  std::vector<std::string> skipped;
  for (size_t i = 0; i < keys->size(); ++i) {
    const json& jwk = (*keys)[i];
    std::string label = fmt::format("keys[{}]", i);
    if (jwk.is_object()) {
      if (const auto kid = jwk.find("kid"); kid != jwk.end() && kid->is_string()) {
        label += fmt::format(" (kid {})", quote(kid->get_ref<const std::string&>()));
      }
    }
    auto key = parse_jwk(jwk);
    if (!key) return gh::fail(fmt::format("{}: {}", label, key.error().message));
    if (!key->usable()) {
      skipped.push_back(fmt::format("{}: {}", label, key->unusable_reason));
    } else if (!key->kid.empty()) {
      for (const PublicKey& other : out) {
        if (other.usable() && other.kid == key->kid) {
          return gh::fail(fmt::format("{}: another usable key has the same kid", label));
        }
      }
    }
    out.push_back(std::move(*key));
  }
  if (std::none_of(out.begin(), out.end(), [](const PublicKey& k) { return k.usable(); })) {
    std::string reasons;
    for (const auto& s : skipped) reasons += (reasons.empty() ? "" : "; ") + s;
    return gh::fail("JWKS has no usable signature verification key (" + reasons + ")");
  }
  return out;
}

gh::Result<std::vector<PublicKey>> load_jwks_file(const std::filesystem::path& path) {
  auto text = read_file(path, kJwksFileBytesMax);
  if (!text) return std::unexpected(text.error());
  auto keys = parse_jwks(*text);
  if (!keys) return gh::fail(fmt::format("{}: {}", path.string(), keys.error().message));
  return keys;
}

gh::Result<std::string> ed25519_public_raw(EVP_PKEY* key) {
  if (key == nullptr || !EVP_PKEY_is_a(key, "ED25519")) return gh::fail("not an Ed25519 key");
  std::array<unsigned char, kEd25519PublicKeyBytes> raw{};
  size_t length = raw.size();
  if (EVP_PKEY_get_raw_public_key(key, raw.data(), &length) != 1 || length != raw.size()) {
    return gh::fail("Ed25519 public key unavailable: " + ossl::drain_errors());
  }
  return std::string(reinterpret_cast<const char*>(raw.data()), raw.size());
}

gh::Result<std::string> ed25519_thumbprint(std::string_view public_raw) {
  // RFC 7638 §3.2: no whitespace, members sorted; base64url has nothing JSON would escape.
  const std::string canonical =
      fmt::format(R"({{"crv":"Ed25519","kty":"OKP","x":"{}"}})", gh::base64url_encode(public_raw));
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_Digest(canonical.data(), canonical.size(), digest.data(), &length, ossl::sha256(),
                 nullptr) != 1) {
    return gh::fail("SHA-256 failed: " + ossl::drain_errors());
  }
  return gh::base64url_encode(
      std::string_view(reinterpret_cast<const char*>(digest.data()), length));
}

nlohmann::json ed25519_public_jwk(std::string_view public_raw, std::string_view kid) {
  return json{{"kty", "OKP"},
              {"crv", "Ed25519"},
              {"x", gh::base64url_encode(public_raw)},
              {"kid", std::string(kid)},
              {"alg", "EdDSA"},
              {"use", "sig"}};
}

}  // namespace gh::identity
