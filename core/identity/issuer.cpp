// The built-in token issuer: the gateway's own Ed25519 key, so that demos and tests need no
// external identity provider. Must not depend on protocols or I/O beyond its two key files.
#include "core/identity/issuer.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <array>
#include <cstdio>

#include "core/base64.hpp"
#include "core/identity/files.hpp"
#include "core/identity/json_object.hpp"
#include "core/identity/jwa.hpp"
#include "core/identity/jwk.hpp"
#include "core/identity/jwt.hpp"
#include "core/identity/limits.hpp"

namespace gh::identity {
namespace {

using json = nlohmann::json;

constexpr size_t kTokenIdBytes = 16;  // 128 random bits: collisions are not a concern

// Key material must not linger in freed heap memory.
class SecretString {
 public:
  SecretString() = default;
  explicit SecretString(std::string text) : text_(std::move(text)) {}
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;
  ~SecretString() {
    if (!text_.empty()) OPENSSL_cleanse(text_.data(), text_.size());
  }
  const std::string& get() const { return text_; }

 private:
  std::string text_;
};

// Never prompt on a terminal for a passphrase: an encrypted key file is simply refused.
int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return -1; }

gh::Result<std::string> pkcs8_pem(EVP_PKEY* key) {
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PKCS8PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return gh::fail("cannot encode the private key: " + ossl::drain_errors());
  }
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  if (length <= 0 || data == nullptr) return gh::fail("cannot encode the private key");
  std::string pem(data, static_cast<size_t>(length));
  OPENSSL_cleanse(data, static_cast<size_t>(length));
  return pem;
}

gh::Result<std::string> random_token_id() {
  std::array<unsigned char, kTokenIdBytes> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    return gh::fail("no randomness for jti: " + ossl::drain_errors());
  }
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) hex += fmt::format("{:02x}", b);
  return hex;
}

// nlohmann throws on strings that are not UTF-8 when dumping; dump twice with the non-throwing
// handlers and refuse when they disagree (only invalid UTF-8 makes them differ).
gh::Result<std::string> dump_compact(const json& value, std::string_view what) {
  std::string replaced = value.dump(-1, ' ', false, json::error_handler_t::replace);
  const std::string ignored = value.dump(-1, ' ', false, json::error_handler_t::ignore);
  if (replaced != ignored)
    return gh::fail(fmt::format("{} holds a string that is not UTF-8", what));
  return replaced;
}

}  // namespace

gh::Result<std::string> keygen(const std::filesystem::path& key_file,
                               const std::filesystem::path& jwks_file) {
  ossl::Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) return gh::fail("Ed25519 key generation failed: " + ossl::drain_errors());
  auto pem_text = pkcs8_pem(key.get());
  if (!pem_text) return std::unexpected(pem_text.error());
  const SecretString pem(std::move(*pem_text));
  auto public_raw = ed25519_public_raw(key.get());
  if (!public_raw) return std::unexpected(public_raw.error());
  auto kid = ed25519_thumbprint(*public_raw);
  if (!kid) return std::unexpected(kid.error());
  const json jwks = {{"keys", json::array({ed25519_public_jwk(*public_raw, *kid)})}};

  if (auto written = write_file_atomic(key_file, pem.get(), 0600, /*replace=*/false); !written) {
    return std::unexpected(written.error());
  }
  if (auto written = write_file_atomic(jwks_file, jwks.dump(2) + "\n", 0644, /*replace=*/true);
      !written) {
    // A key nobody can verify is useless: take it back so that keygen can simply be rerun.
    std::remove(key_file.c_str());
    return std::unexpected(written.error());
  }
  return *kid;
}

TokenMinter::TokenMinter(ossl::SharedPkey key, std::string public_raw, std::string kid)
    : key_(std::move(key)), public_raw_(std::move(public_raw)), kid_(std::move(kid)) {}

gh::Result<TokenMinter> TokenMinter::load(const std::filesystem::path& key_file) {
  auto text = read_file(key_file, kKeyFileBytesMax);
  if (!text) return std::unexpected(text.error());
  const SecretString pem(std::move(*text));
  ossl::Bio bio(BIO_new_mem_buf(pem.get().data(), static_cast<int>(pem.get().size())));
  if (!bio) return gh::fail(fmt::format("{}: out of memory", key_file.string()));
  ossl::Pkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) {
    return gh::fail(fmt::format("{}: not an unencrypted PEM private key: {}", key_file.string(),
                                ossl::drain_errors()));
  }
  if (!EVP_PKEY_is_a(key.get(), "ED25519")) {
    return gh::fail(fmt::format("{}: not an Ed25519 key", key_file.string()));
  }
  auto public_raw = ed25519_public_raw(key.get());
  if (!public_raw)
    return gh::fail(fmt::format("{}: {}", key_file.string(), public_raw.error().message));
  auto kid = ed25519_thumbprint(*public_raw);
  if (!kid) return gh::fail(fmt::format("{}: {}", key_file.string(), kid.error().message));
  return TokenMinter(ossl::share(std::move(key)), std::move(*public_raw), std::move(*kid));
}

const std::string& TokenMinter::key_id() const { return kid_; }

json TokenMinter::public_jwks() const {
  return {{"keys", json::array({ed25519_public_jwk(public_raw_, kid_)})}};
}

gh::Result<std::string> TokenMinter::issue(const TokenRequest& request, int64_t now_s) const {
  auto issued = issue_token(request, now_s);
  if (!issued) return std::unexpected(issued.error());
  return std::move(issued->token);
}

gh::Result<IssuedToken> TokenMinter::issue_token(const TokenRequest& request, int64_t now_s) const {
  if (request.subject.empty()) return gh::fail("token request: subject is empty");
  if (request.issuer.empty()) return gh::fail("token request: issuer is empty");
  if (request.audience.empty()) return gh::fail("token request: audience is empty");
  if (request.ttl_s <= 0 || request.ttl_s > kTokenTtlSMax) {
    return gh::fail(
        fmt::format("token request: ttl {}s is outside 1..{}s", request.ttl_s, kTokenTtlSMax));
  }
  if (now_s < 0 || now_s > (int64_t{1} << 62)) {
    return gh::fail(fmt::format("token request: time {} is out of range", now_s));
  }
  if (request.actors.size() > kMintActorsMax) {
    return gh::fail(fmt::format("token request: {} actors, over the limit of {}",
                                request.actors.size(), kMintActorsMax));
  }
  for (const std::string& actor : request.actors) {
    if (actor.empty()) return gh::fail("token request: an actor is empty");
  }
  if (!request.extra_claims.is_object()) {
    return gh::fail("token request: extra claims are not a JSON object");
  }
  if (request.lineage.size() > kLineageMax) {
    return gh::fail(fmt::format("token request: lineage of {} tokens, over the limit of {}",
                                request.lineage.size(), kLineageMax));
  }
  if (request.connections && request.connections->size() > kConnectionsClaimMax) {
    return gh::fail(fmt::format("token request: {} connections, over the limit of {}",
                                request.connections->size(), kConnectionsClaimMax));
  }
  for (const char* reserved : {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "act", "groups",
                               kLineageClaim, kConnectionsClaim}) {
    if (request.extra_claims.contains(reserved)) {
      return gh::fail(
          fmt::format("token request: extra claim \"{}\" is set by the issuer itself", reserved));
    }
  }

  auto token_id = random_token_id();
  if (!token_id) return std::unexpected(token_id.error());
  json claims = request.extra_claims;
  claims["iss"] = request.issuer;
  claims["sub"] = request.subject;
  claims["aud"] = request.audience;
  claims["iat"] = now_s;
  claims["nbf"] = now_s;
  claims["exp"] = now_s + request.ttl_s;
  claims["jti"] = *token_id;
  if (!request.groups.empty()) claims["groups"] = request.groups;
  if (!request.lineage.empty()) claims[kLineageClaim] = request.lineage;
  if (request.connections) claims[kConnectionsClaim] = *request.connections;
  // RFC 8693 §4.1: the outermost "act" is the current actor; earlier ones nest inside it.
  if (!request.actors.empty()) {
    json act = {{"sub", request.actors.front()}};
    for (size_t i = 1; i < request.actors.size(); ++i) {
      act = json{{"sub", request.actors[i]}, {"act", std::move(act)}};
    }
    claims["act"] = std::move(act);
  }
  const json header = {{"alg", "EdDSA"}, {"kid", kid_}, {"typ", "JWT"}};

  auto header_text = dump_compact(header, "token header");
  if (!header_text) return std::unexpected(header_text.error());
  auto claims_text = dump_compact(claims, "token claims");
  if (!claims_text) return std::unexpected(claims_text.error());
  std::string token = gh::base64url_encode(*header_text);
  token += '.';
  token += gh::base64url_encode(*claims_text);
  auto signature = sign_ed25519(key_.get(), token);
  if (!signature) return std::unexpected(signature.error());
  token += '.';
  token += gh::base64url_encode(*signature);
  return IssuedToken{std::move(token), std::move(*token_id), now_s + request.ttl_s};
}

}  // namespace gh::identity
