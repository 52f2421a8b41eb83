// The built-in Ed25519 issuer: keygen files, minting, and a round trip through the Validator.
// Uses a temporary directory for its key files; no network.
#include "core/identity/issuer.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <fstream>
#include <set>

#include "core/base64.hpp"
#include "core/identity/jwa.hpp"
#include "core/identity/jwk.hpp"
#include "core/identity/jwt.hpp"
#include "tests/unit/core/identity/test_keys.hpp"

namespace gh::identity {
namespace {

using nlohmann::json;

constexpr int64_t kNow = 1'700'000'000;

TEST(KeygenTest, WritesPrivateKeyAndPublicJwks) {
  testing::TempDir dir;
  const auto key_file = dir.path() / "issuer.pem";
  const auto jwks_file = dir.path() / "issuer.jwks.json";
  const auto kid = keygen(key_file, jwks_file);
  ASSERT_TRUE(kid.has_value()) << kid.error().message;
  EXPECT_EQ(kid->size(), 43u);  // base64url of a SHA-256 digest

  struct stat st {};
  ASSERT_EQ(::stat(key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600);
  std::ifstream pem_in(key_file);
  const std::string pem((std::istreambuf_iterator<char>(pem_in)), {});
  EXPECT_EQ(pem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u) << pem;  // PKCS#8

  std::ifstream jwks_in(jwks_file);
  const json jwks = json::parse(jwks_in, nullptr, false);
  ASSERT_FALSE(jwks.is_discarded());
  ASSERT_EQ(jwks["keys"].size(), 1u);
  const json& jwk = jwks["keys"][0];
  EXPECT_EQ(jwk["kty"], "OKP");
  EXPECT_EQ(jwk["crv"], "Ed25519");
  EXPECT_EQ(jwk["alg"], "EdDSA");
  EXPECT_EQ(jwk["use"], "sig");
  EXPECT_EQ(jwk["kid"], *kid);
  EXPECT_FALSE(jwk.contains("d"));
  // The kid is the RFC 7638 thumbprint, recomputed here by hand.
  const std::string canonical =
      R"({"crv":"Ed25519","kty":"OKP","x":")" + jwk["x"].get<std::string>() + R"("})";
  unsigned char digest[32];
  unsigned int length = 0;
  ASSERT_EQ(EVP_Digest(canonical.data(), canonical.size(), digest, &length, EVP_sha256(), nullptr),
            1);
  EXPECT_EQ(*kid, testing::b64(std::string_view(reinterpret_cast<char*>(digest), length)));

  // A second keygen must not destroy the first key.
  const auto again = keygen(key_file, dir.path() / "other.json");
  ASSERT_FALSE(again.has_value());
  EXPECT_NE(again.error().message.find("already exists"), std::string::npos)
      << again.error().message;
  std::ifstream pem_after(key_file);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(pem_after)), {}), pem);

  EXPECT_FALSE(keygen(dir.path() / "no-such-dir" / "k.pem", jwks_file).has_value());
}

TEST(TokenMinterTest, RoundTripThroughValidator) {
  testing::TempDir dir;
  const auto key_file = dir.path() / "issuer.pem";
  const auto jwks_file = dir.path() / "issuer.jwks.json";
  const auto kid = keygen(key_file, jwks_file);
  ASSERT_TRUE(kid.has_value()) << kid.error().message;
  const auto minter = TokenMinter::load(key_file);
  ASSERT_TRUE(minter.has_value()) << minter.error().message;
  EXPECT_EQ(minter->key_id(), *kid);
  EXPECT_EQ(minter->public_jwks()["keys"][0]["kid"], *kid);

  IssuerConfig config;
  config.name = "builtin";
  config.issuer = "gatehouse";
  config.audiences = {"gatehouse-pg"};
  config.jwks_file = jwks_file.string();
  config.algorithms = {"EdDSA"};
  const auto validator = Validator::create({config}, {});
  ASSERT_TRUE(validator.has_value()) << validator.error().message;

  TokenRequest request;
  request.subject = "alice";
  request.groups = {"dev", "deployers"};
  request.ttl_s = 600;
  request.actors = {"ci-runner", "deploy-svc", "db-agent"};
  request.audience = "gatehouse-pg";
  request.issuer = "gatehouse";
  request.extra_claims = {{"repository", "acme/shop"}, {"run_id", 4242}};
  const auto token = minter->issue(request, kNow);
  ASSERT_TRUE(token.has_value()) << token.error().message;

  const auto header = json::parse(*gh::base64url_decode(testing::segment(*token, 0)));
  EXPECT_EQ(header, (json{{"alg", "EdDSA"}, {"kid", *kid}, {"typ", "JWT"}}));

  const auto identity = validator->validate(*token, kNow + 1);
  ASSERT_TRUE(identity.has_value()) << identity.error().message;
  EXPECT_EQ(identity->issuer, "gatehouse");
  EXPECT_EQ(identity->subject, "alice");
  EXPECT_EQ(identity->actors, (std::vector<std::string>{"ci-runner", "deploy-svc", "db-agent"}));
  EXPECT_EQ(identity->chain_string(), "alice \u2192 ci-runner \u2192 deploy-svc \u2192 db-agent");
  EXPECT_EQ(identity->groups, (std::vector<std::string>{"dev", "deployers"}));
  EXPECT_EQ(identity->issued_at, kNow);
  EXPECT_EQ(identity->not_before, kNow);
  EXPECT_EQ(identity->expires_at, kNow + 600);
  EXPECT_EQ(identity->claims["repository"], "acme/shop");
  EXPECT_EQ(identity->claims["run_id"], 4242);
  EXPECT_EQ(identity->claims["act"]["sub"], "db-agent");  // outermost = current actor
  ASSERT_EQ(identity->token_id.size(), 32u);
  EXPECT_EQ(identity->token_id.find_first_not_of("0123456789abcdef"), std::string::npos);

  // Expired after ttl + skew; each token gets its own jti.
  EXPECT_FALSE(validator->validate(*token, kNow + 600 + 60).has_value());
  std::set<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    const auto t = minter->issue(request, kNow);
    ASSERT_TRUE(t.has_value());
    ids.insert(validator->validate(*t, kNow)->token_id);
  }
  EXPECT_EQ(ids.size(), 20u);

  // No actors, no groups: neither claim is written.
  request.actors.clear();
  request.groups.clear();
  const auto plain = validator->validate(*minter->issue(request, kNow), kNow);
  ASSERT_TRUE(plain.has_value());
  EXPECT_FALSE(plain->claims.contains("act"));
  EXPECT_FALSE(plain->claims.contains("groups"));
  EXPECT_EQ(plain->chain_string(), "alice");

  // A different key with the same kid cannot impersonate the issuer.
  const auto impostor_dir = testing::TempDir();
  ASSERT_TRUE(keygen(impostor_dir.path() / "k.pem", impostor_dir.path() / "k.json").has_value());
  const auto impostor = TokenMinter::load(impostor_dir.path() / "k.pem");
  ASSERT_TRUE(impostor.has_value());
  const std::string forged = *impostor->issue(request, kNow);
  const std::string relabelled = testing::with_segment(
      forged, 0, testing::b64(json{{"alg", "EdDSA"}, {"kid", *kid}, {"typ", "JWT"}}.dump()));
  const auto refused = validator->validate(relabelled, kNow);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("signature does not verify"), std::string::npos);
}

TEST(TokenMinterTest, RefusesBadRequests) {
  testing::TempDir dir;
  ASSERT_TRUE(keygen(dir.path() / "k.pem", dir.path() / "k.json").has_value());
  const auto minter = TokenMinter::load(dir.path() / "k.pem");
  ASSERT_TRUE(minter.has_value());
  TokenRequest good;
  good.subject = "alice";
  good.audience = "pg";
  good.issuer = "gatehouse";
  ASSERT_TRUE(minter->issue(good, kNow).has_value());

  const auto refused = [&](TokenRequest request, std::string_view reason) {
    const auto token = minter->issue(request, kNow);
    ASSERT_FALSE(token.has_value()) << reason;
    EXPECT_NE(token.error().message.find(reason), std::string::npos) << token.error().message;
  };
  TokenRequest r = good;
  r.subject.clear();
  refused(r, "subject is empty");
  r = good;
  r.audience.clear();
  refused(r, "audience is empty");
  r = good;
  r.issuer.clear();
  refused(r, "issuer is empty");
  r = good;
  r.ttl_s = 0;
  refused(r, "ttl 0s is outside");
  r.ttl_s = 2 * 24 * 3600;
  refused(r, "is outside 1..86400s");
  r = good;
  r.actors = {"ci", ""};
  refused(r, "an actor is empty");
  r = good;
  r.actors.assign(100, "agent");
  refused(r, "100 actors, over the limit");
  r = good;
  r.extra_claims = {{"sub", "root"}};
  refused(r, "extra claim \"sub\" is set by the issuer itself");
  r.extra_claims = {{"groups", {"admin"}}};
  refused(r, "extra claim \"groups\"");
  r.extra_claims = {{"act", {{"sub", "x"}}}};
  refused(r, "extra claim \"act\"");
  r.extra_claims = json::array();
  refused(r, "not a JSON object");
  r.extra_claims = {{"repository", "bad\xff utf8"}};
  refused(r, "not UTF-8");
}

TEST(TokenMinterTest, LoadRefusesOtherKeys) {
  testing::TempDir dir;
  const auto refused = [&](std::string_view name, std::string_view text, std::string_view reason) {
    const auto minter = TokenMinter::load(dir.write(name, text));
    ASSERT_FALSE(minter.has_value()) << name;
    EXPECT_NE(minter.error().message.find(reason), std::string::npos) << minter.error().message;
    EXPECT_NE(minter.error().message.find(name), std::string::npos) << minter.error().message;
  };
  refused("p256.pem", testing::private_pem(testing::generate_p256().get()), "not an Ed25519 key");
  refused("garbage.pem", "hello", "not an unencrypted PEM private key");
  refused("public.pem", testing::public_pem(testing::generate_ed25519().get()),
          "not an unencrypted PEM private key");
  // An encrypted key is refused without prompting for a passphrase on the terminal.
  const auto key = testing::generate_ed25519();
  BIO* bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(bio, key.get(), EVP_aes_256_cbc(), nullptr, 0, nullptr,
                                          const_cast<char*>("secret")),
            1);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  const std::string encrypted(data, static_cast<size_t>(n));
  BIO_free(bio);
  refused("encrypted.pem", encrypted, "not an unencrypted PEM private key");
  const auto missing = TokenMinter::load(dir.path() / "missing.pem");
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("missing.pem: cannot open"), std::string::npos);
}

// RFC 8037 Appendix A: a known Ed25519 key, its RFC 7638 thumbprint, and a known signature.
TEST(TokenMinterTest, Rfc8037Example) {
  const std::string d = *gh::base64url_decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
  const std::string x = *gh::base64url_decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
  EXPECT_EQ(*ed25519_thumbprint(x), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");

  testing::Key key(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                   reinterpret_cast<const unsigned char*>(d.data()), d.size()),
      EVP_PKEY_free);
  ASSERT_NE(key, nullptr);
  testing::TempDir dir;
  const auto minter = TokenMinter::load(dir.write("rfc8037.pem", testing::private_pem(key.get())));
  ASSERT_TRUE(minter.has_value()) << minter.error().message;
  EXPECT_EQ(minter->key_id(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
  EXPECT_EQ(minter->public_jwks()["keys"][0]["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");

  const std::string input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
  const std::string expected =
      "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
  const auto signature = sign_ed25519(key.get(), input);
  ASSERT_TRUE(signature.has_value());
  EXPECT_EQ(testing::b64(*signature), expected);
  EXPECT_TRUE(verify_signature(Algorithm::kEdDsa, key.get(), input, *signature).has_value());
}

}  // namespace
}  // namespace gh::identity
