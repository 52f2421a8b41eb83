// Token validation: every accepted algorithm, and each refusal with its reason (RFC 8725).
// Sans-I/O apart from the JWKS files written into a temporary directory.
#include "core/identity/jwt.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "core/base64.hpp"
#include "tests/unit/core/identity/test_keys.hpp"

namespace gh::identity {
namespace {

using nlohmann::json;
using testing::EcdsaForm;
using testing::make_token;

constexpr int64_t kNow = 1'700'000'000;
const std::string kIss = "https://ci.example.com";
const std::string kAud = "gatehouse";

class JwtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = testing::generate_rsa(2048);
    ec_ = testing::generate_p256();
    ed_ = testing::generate_ed25519();
    other_ed_ = testing::generate_ed25519();
  }
  static void TearDownTestSuite() {
    rsa_.reset();
    ec_.reset();
    ed_.reset();
    other_ed_.reset();
  }

  // The standard key set: one key of each type, plus an RSA key pinned to RS256.
  json jwks() const {
    return {{"keys",
             {testing::public_jwk(rsa_.get(), "rsa"), testing::public_jwk(ec_.get(), "ec"),
              testing::public_jwk(ed_.get(), "ed"),
              testing::public_jwk(rsa_.get(), "rsa-rs256", "RS256")}}};
  }

  IssuerConfig issuer_config(const json& keys) const {
    IssuerConfig config;
    config.name = "ci";
    config.issuer = kIss;
    config.audiences = {"other-service", kAud};
    config.jwks_file =
        dir_.write("jwks-" + std::to_string(files_++) + ".json", keys.dump()).string();
    return config;
  }

  Validator validator(ValidatorOptions options = {}) const {
    return validator_for({issuer_config(jwks())}, options);
  }
  Validator validator_for(std::vector<IssuerConfig> issuers, ValidatorOptions options = {}) const {
    auto v = Validator::create(std::move(issuers), options);
    EXPECT_TRUE(v.has_value()) << v.error().message;
    return std::move(*v);
  }

  static json claims() {
    return {{"iss", kIss},      {"sub", "alice"},          {"aud", kAud},
            {"iat", kNow - 10}, {"nbf", kNow - 10},        {"exp", kNow + 300},
            {"jti", "token-1"}, {"groups", {"dev", "ops"}}};
  }
  static json header(std::string alg, std::string kid) {
    return {{"alg", std::move(alg)}, {"kid", std::move(kid)}, {"typ", "JWT"}};
  }
  static std::string ed_token(const json& c) {
    return make_token(header("EdDSA", "ed"), c, ed_.get());
  }

  // Expects a refusal whose reason contains `reason`.
  static void expect_refused(const gh::Result<Identity>& result, std::string_view reason) {
    ASSERT_FALSE(result.has_value()) << "accepted, expected: " << reason;
    EXPECT_NE(result.error().message.find(reason), std::string::npos)
        << "reason: " << result.error().message << "\nexpected to contain: " << reason;
  }

  static inline testing::Key rsa_, ec_, ed_, other_ed_;
  testing::TempDir dir_;
  mutable int files_ = 0;
};

TEST_F(JwtTest, AcceptsEachAlgorithm) {
  const Validator v = validator();
  struct Case {
    const char* alg;
    const char* kid;
    EVP_PKEY* key;
  };
  for (const Case& c : {Case{"RS256", "rsa", rsa_.get()}, Case{"PS256", "rsa", rsa_.get()},
                        Case{"RS256", "rsa-rs256", rsa_.get()}, Case{"ES256", "ec", ec_.get()},
                        Case{"EdDSA", "ed", ed_.get()}}) {
    SCOPED_TRACE(c.alg);
    const auto result = v.validate(make_token(header(c.alg, c.kid), claims(), c.key), kNow);
    ASSERT_TRUE(result.has_value()) << result.error().message;
    EXPECT_EQ(result->issuer, kIss);
    EXPECT_EQ(result->subject, "alice");
    EXPECT_TRUE(result->actors.empty());
    EXPECT_EQ(result->groups, (std::vector<std::string>{"dev", "ops"}));
    EXPECT_EQ(result->token_id, "token-1");
    EXPECT_EQ(result->issued_at, kNow - 10);
    EXPECT_EQ(result->not_before, kNow - 10);
    EXPECT_EQ(result->expires_at, kNow + 300);
    EXPECT_EQ(result->claims, claims());
    EXPECT_EQ(result->chain_string(), "alice");
  }
}

TEST_F(JwtTest, TypAndAudienceForms) {
  const Validator v = validator();
  for (const char* typ : {"JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt"}) {
    json h = header("EdDSA", "ed");
    h["typ"] = typ;
    EXPECT_TRUE(v.validate(make_token(h, claims(), ed_.get()), kNow).has_value()) << typ;
  }
  json h = header("EdDSA", "ed");
  h.erase("typ");
  EXPECT_TRUE(v.validate(make_token(h, claims(), ed_.get()), kNow).has_value());
  json c = claims();
  c["aud"] = {"somebody", kAud};
  EXPECT_TRUE(v.validate(ed_token(c), kNow).has_value());
  c["aud"] = "other-service";
  EXPECT_TRUE(v.validate(ed_token(c), kNow).has_value());
}

TEST_F(JwtTest, ExpiryWithSkew) {
  const Validator v = validator();  // skew 60 s
  json c = claims();
  c["exp"] = kNow - 30;  // expired, but within the skew
  const auto within = v.validate(ed_token(c), kNow);
  ASSERT_TRUE(within.has_value()) << within.error().message;
  EXPECT_EQ(within->expires_at, kNow - 30);
  c["exp"] = kNow - 60;  // now >= exp + skew
  expect_refused(v.validate(ed_token(c), kNow), "token expired at");
  c["exp"] = kNow - 3600;
  expect_refused(v.validate(ed_token(c), kNow), "token expired at");

  const Validator strict = validator(ValidatorOptions{.clock_skew_s = 0});
  c["exp"] = kNow;
  expect_refused(strict.validate(ed_token(c), kNow), "token expired at");
  c["exp"] = kNow + 1;
  EXPECT_TRUE(strict.validate(ed_token(c), kNow).has_value());
  c["exp"] = kNow + 0.5;  // NumericDate may be fractional; rounded down, so already expired
  expect_refused(strict.validate(ed_token(c), kNow), "token expired at");
}

TEST_F(JwtTest, NotBeforeAndIssuedAt) {
  const Validator v = validator();
  json c = claims();
  c["nbf"] = kNow + 120;
  expect_refused(v.validate(ed_token(c), kNow), "not valid before");
  c["nbf"] = kNow + 30;
  EXPECT_TRUE(v.validate(ed_token(c), kNow).has_value());
  c = claims();
  c["iat"] = kNow + 120;
  expect_refused(v.validate(ed_token(c), kNow), "issued in the future");
  c["iat"] = kNow + 30;
  EXPECT_TRUE(v.validate(ed_token(c), kNow).has_value());
  c = claims();
  c.erase("iat");
  c.erase("nbf");
  const auto result = v.validate(ed_token(c), kNow);
  ASSERT_TRUE(result.has_value()) << result.error().message;
  EXPECT_EQ(result->issued_at, 0);
  EXPECT_EQ(result->not_before, 0);
  c["nbf"] = "soon";
  expect_refused(v.validate(ed_token(c), kNow), "\"nbf\" is not a NumericDate");
}

TEST_F(JwtTest, WrongIssuer) {
  const Validator v = validator();
  json c = claims();
  c["iss"] = "https://evil.example.com";
  expect_refused(v.validate(ed_token(c), kNow), "no issuer is configured for iss");
  c["iss"] = kIss + "/";  // exact match only
  expect_refused(v.validate(ed_token(c), kNow), "no issuer is configured for iss");
  c.erase("iss");
  expect_refused(v.validate(ed_token(c), kNow), "no \"iss\"");
}

TEST_F(JwtTest, WrongAudience) {
  const Validator v = validator();
  json c = claims();
  c["aud"] = "another-gateway";
  expect_refused(v.validate(ed_token(c), kNow), "names none of issuer \"ci\"'s audiences");
  c["aud"] = {"a", "b"};
  expect_refused(v.validate(ed_token(c), kNow), "names none of issuer");
  c["aud"] = json::array();
  expect_refused(v.validate(ed_token(c), kNow), "names none of issuer");
  c["aud"] = {kAud, 7};
  expect_refused(v.validate(ed_token(c), kNow), "\"aud\" array holds a non-string");
  c["aud"] = 7;
  expect_refused(v.validate(ed_token(c), kNow), "\"aud\" is not a string or an array");
  c.erase("aud");
  expect_refused(v.validate(ed_token(c), kNow), "no \"aud\"");
}

TEST_F(JwtTest, AlgNoneIsRefused) {
  const Validator v = validator();
  const std::string payload = testing::b64(claims().dump());
  for (const char* alg : {"none", "None", "NONE"}) {
    const std::string unsigned_token =
        testing::b64(json{{"alg", alg}}.dump()) + "." + payload + ".";
    expect_refused(v.validate(unsigned_token, kNow), "alg \"none\"");
  }
  // A signature segment does not make "none" any better.
  const std::string with_sig = testing::b64(json{{"alg", "none"}, {"kid", "ed"}}.dump()) + "." +
                               payload + "." + testing::b64(std::string(64, 'x'));
  expect_refused(v.validate(with_sig, kNow), "alg \"none\"");
}

TEST_F(JwtTest, HmacWithThePublicKeyIsRefused) {
  const Validator v = validator();
  // The classic confusion: HS256 keyed with the verifier's public key (PEM, or the JWKS text).
  for (const std::string& secret : {testing::public_pem(rsa_.get()), jwks().dump(),
                                    testing::public_jwk(rsa_.get(), "rsa").dump()}) {
    for (const char* alg : {"HS256", "HS384", "HS512", "hs256"}) {
      const std::string input = testing::b64(json{{"alg", alg}, {"kid", "rsa"}}.dump()) + "." +
                                testing::b64(claims().dump());
      const std::string token = input + "." + testing::b64(testing::hmac_sha256(secret, input));
      expect_refused(v.validate(token, kNow), "(HMAC) is never accepted");
    }
  }
  // Nor can configuration allow it.
  IssuerConfig config = issuer_config(jwks());
  config.algorithms = {"RS256", "HS256"};
  const auto created = Validator::create({config}, {});
  ASSERT_FALSE(created.has_value());
  EXPECT_NE(created.error().message.find("algorithm \"HS256\" is not accepted"), std::string::npos)
      << created.error().message;
  config.algorithms = {"none"};
  EXPECT_FALSE(Validator::create({config}, {}).has_value());
}

TEST_F(JwtTest, TamperedPayloadAndSignature) {
  const Validator v = validator();
  for (const auto& [alg, kid, key] :
       {std::tuple{"RS256", "rsa", rsa_.get()}, std::tuple{"PS256", "rsa", rsa_.get()},
        std::tuple{"ES256", "ec", ec_.get()}, std::tuple{"EdDSA", "ed", ed_.get()}}) {
    SCOPED_TRACE(alg);
    const std::string token = make_token(header(alg, kid), claims(), key);
    ASSERT_TRUE(v.validate(token, kNow).has_value());

    json c = claims();
    c["sub"] = "root";
    c["groups"] = {"admin"};
    const std::string forged = testing::with_segment(token, 1, testing::b64(c.dump()));
    expect_refused(v.validate(forged, kNow), "signature does not verify");

    std::string sig = *gh::base64url_decode(testing::segment(token, 2));
    sig[sig.size() / 2] = static_cast<char>(sig[sig.size() / 2] ^ 0x01);
    expect_refused(v.validate(testing::with_segment(token, 2, testing::b64(sig)), kNow),
                   "signature does not verify");

    // Signed by a key the issuer does not have, under the issuer's kid.
    if (std::string_view(alg) == "EdDSA") {
      const std::string impostor = make_token(header(alg, kid), claims(), other_ed_.get());
      expect_refused(v.validate(impostor, kNow), "signature does not verify");
    }
  }
}

TEST_F(JwtTest, SignatureLengths) {
  const Validator v = validator();
  // ES256 in DER (what OpenSSL produces natively) is not a JWS signature (RFC 7518 §3.4).
  const std::string der = make_token(header("ES256", "ec"), claims(), ec_.get(), EcdsaForm::kDer);
  expect_refused(v.validate(der, kNow), "JWS uses raw R||S of 64 bytes");
  const std::string ed = make_token(header("EdDSA", "ed"), claims(), ed_.get());
  expect_refused(v.validate(testing::with_segment(ed, 2, testing::b64(std::string(63, 'a'))), kNow),
                 "EdDSA signature is 63 bytes");
  const std::string rs = make_token(header("RS256", "rsa"), claims(), rsa_.get());
  std::string sig = *gh::base64url_decode(testing::segment(rs, 2));
  sig.pop_back();
  expect_refused(v.validate(testing::with_segment(rs, 2, testing::b64(sig)), kNow),
                 "RS256 signature is 255 bytes; the key's modulus is 256 bytes");
  expect_refused(v.validate(testing::with_segment(rs, 2, ""), kNow), "RS256 signature is 0 bytes");
}

TEST_F(JwtTest, KeySelection) {
  const Validator v = validator();
  expect_refused(v.validate(make_token(header("EdDSA", "nope"), claims(), ed_.get()), kNow),
                 "unknown kid \"nope\" for issuer \"ci\"");
  json no_kid = {{"alg", "EdDSA"}};
  expect_refused(v.validate(make_token(no_kid, claims(), ed_.get()), kNow),
                 "token has no kid and issuer \"ci\" has 4 usable keys");
  json bad_kid = {{"alg", "EdDSA"}, {"kid", 3}};
  expect_refused(v.validate(make_token(bad_kid, claims(), ed_.get()), kNow), "\"kid\" is not");

  // With exactly one usable key, a token without kid uses it.
  const Validator single =
      validator_for({issuer_config({{"keys",
                                     {testing::public_jwk(ed_.get(), ""),
                                      {{"kty", "oct"}, {"k", "c2VjcmV0"}, {"kid", "hmac"}}}}})});
  const auto result = single.validate(make_token(no_kid, claims(), ed_.get()), kNow);
  EXPECT_TRUE(result.has_value()) << result.error().message;
  expect_refused(single.validate(make_token(header("EdDSA", "hmac"), claims(), ed_.get()), kNow),
                 "key \"hmac\" of issuer \"ci\" cannot verify: kty \"oct\" is not accepted");
}

TEST_F(JwtTest, KeysStayWithTheirIssuer) {
  // Issuer B's key cannot sign for issuer A, even when the token names B's kid.
  IssuerConfig a = issuer_config({{"keys", {testing::public_jwk(rsa_.get(), "a-key")}}});
  IssuerConfig b = issuer_config({{"keys", {testing::public_jwk(ed_.get(), "b-key")}}});
  b.name = "other";
  b.issuer = "https://other.example.com";
  const Validator v = validator_for({a, b});
  expect_refused(v.validate(make_token(header("EdDSA", "b-key"), claims(), ed_.get()), kNow),
                 "unknown kid \"b-key\" for issuer \"ci\"");
  json c = claims();
  c["iss"] = "https://other.example.com";
  EXPECT_TRUE(v.validate(make_token(header("EdDSA", "b-key"), c, ed_.get()), kNow).has_value());
}

TEST_F(JwtTest, AlgorithmMustFitKeyAndAllowList) {
  const Validator v = validator();
  // An RS256 header naming the EC key (whatever signed it).
  expect_refused(v.validate(make_token(header("RS256", "ec"), claims(), rsa_.get()), kNow),
                 "alg RS256 does not fit key \"ec\", a EC P-256 key");
  expect_refused(v.validate(make_token(header("EdDSA", "rsa"), claims(), ed_.get()), kNow),
                 "alg EdDSA does not fit key \"rsa\", a RSA key");
  // The JWK pins RS256; a correctly signed PS256 token under it is still refused.
  expect_refused(v.validate(make_token(header("PS256", "rsa-rs256"), claims(), rsa_.get()), kNow),
                 "alg PS256 differs from the alg RS256 of key \"rsa-rs256\"");
  // Algorithms outside the issuer's allow-list.
  IssuerConfig config = issuer_config(jwks());
  config.algorithms = {"EdDSA"};
  const Validator eddsa_only = validator_for({config});
  expect_refused(
      eddsa_only.validate(make_token(header("RS256", "rsa"), claims(), rsa_.get()), kNow),
      "alg RS256 is not allowed for issuer \"ci\"");
  EXPECT_TRUE(eddsa_only.validate(ed_token(claims()), kNow).has_value());
  expect_refused(v.validate(make_token(header("RS384", "rsa"), claims(), rsa_.get()), kNow),
                 "alg \"RS384\" is not supported");
}

TEST_F(JwtTest, HeaderRules) {
  const Validator v = validator();
  json h = header("EdDSA", "ed");
  h["crit"] = {"exp"};
  expect_refused(v.validate(make_token(h, claims(), ed_.get()), kNow), "\"crit\"");
  h = header("EdDSA", "ed");
  h["typ"] = "JWS";
  expect_refused(v.validate(make_token(h, claims(), ed_.get()), kNow), "typ \"JWS\" is neither");
  h["typ"] = 1;
  expect_refused(v.validate(make_token(h, claims(), ed_.get()), kNow), "\"typ\" is not a string");
  h = {{"kid", "ed"}};
  expect_refused(v.validate(make_token(h, claims(), ed_.get()), kNow), "no \"alg\"");
  const std::string dup_header = testing::make_token_text(
      R"({"alg":"EdDSA","kid":"ed","alg":"RS256"})", claims().dump(), "EdDSA", ed_.get());
  expect_refused(v.validate(dup_header, kNow), "header has duplicate member \"alg\"");
}

TEST_F(JwtTest, DuplicateClaimsAreRefused) {
  const Validator v = validator();
  // Parsers that keep the first and ones that keep the last disagree on who this is.
  const std::string text = R"({"iss":"https://ci.example.com","aud":"gatehouse","exp":1700000300,)"
                           R"("sub":"alice","sub":"root"})";
  expect_refused(v.validate(testing::make_token_text(R"({"alg":"EdDSA","kid":"ed"})", text, "EdDSA",
                                                     ed_.get()),
                            kNow),
                 "payload has duplicate member \"sub\"");
}

TEST_F(JwtTest, MalformedTokens) {
  const Validator v = validator();
  const std::string good = ed_token(claims());
  const std::string h = testing::segment(good, 0);
  const std::string p = testing::segment(good, 1);
  const std::string s = testing::segment(good, 2);
  struct Case {
    std::string token;
    const char* reason;
  };
  const Case cases[] = {
      {"", "token is empty"},
      {h + "." + p, "token has 2 segments"},
      {h + "." + p + "." + s + ".x", "token has 4 segments"},
      {h + ".a.b.c." + s, "token has 5 segments"},  // JWE compact form
      {"." + p + "." + s, "header segment is empty"},
      {h + ".." + s, "payload segment is empty"},
      {"@@@." + p + "." + s, "header is not unpadded base64url"},
      {h + "=." + p + "." + s, "header is not unpadded base64url"},
      {h + "." + p + "!." + s, "payload is not unpadded base64url"},
      {h + "." + p + "." + s + "=", "signature is not unpadded base64url"},
      {h + "." + p + ".a", "signature is not unpadded base64url"},
      {testing::b64("{\"alg\":") + "." + p + "." + s, "header is not valid JSON"},
      {testing::b64("[\"EdDSA\"]") + "." + p + "." + s, "header is not a JSON object"},
      {h + "." + testing::b64("not json") + "." + s, "payload is not valid JSON"},
      {h + "." + testing::b64("42") + "." + s, "payload is not a JSON object"},
      {h + "." + testing::b64("{\"iss\":\"\xff\"}") + "." + s, "payload is not valid JSON"},
      {" " + good, "header is not unpadded base64url"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.token);
    expect_refused(v.validate(c.token, kNow), c.reason);
  }
  // Deeply nested JSON is refused (or at least survives) without exhausting the stack.
  const std::string deep = std::string(6000, '[') + std::string(6000, ']');
  expect_refused(v.validate(testing::b64(deep) + "." + p + "." + s, kNow),
                 "header is not a JSON object");
  expect_refused(v.validate(h + "." + testing::b64("{\"a\":" + deep + "}") + "." + s, kNow),
                 "token has no \"iss\" string");
  // Every truncation of a good token is refused, never crashes.
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(v.validate(std::string_view(good).substr(0, n), kNow).has_value()) << n;
  }
}

TEST_F(JwtTest, OversizedToken) {
  ValidatorOptions options;
  options.token_bytes_max = 1024;
  const Validator v = validator(options);
  json c = claims();
  c["padding"] = std::string(2000, 'x');
  const std::string token = ed_token(c);
  expect_refused(v.validate(token, kNow),
                 "token is " + std::to_string(token.size()) + " bytes, over the limit of 1024");
  EXPECT_TRUE(v.validate(ed_token(claims()), kNow).has_value());
}

TEST_F(JwtTest, RequiredClaims) {
  const Validator v = validator();
  json c = claims();
  c.erase("sub");
  expect_refused(v.validate(ed_token(c), kNow), "no non-empty \"sub\" string");
  c["sub"] = "";
  expect_refused(v.validate(ed_token(c), kNow), "no non-empty \"sub\" string");
  c["sub"] = 42;
  expect_refused(v.validate(ed_token(c), kNow), "no non-empty \"sub\" string");
  c = claims();
  c.erase("exp");
  expect_refused(v.validate(ed_token(c), kNow), "no \"exp\"");
  c["exp"] = "tomorrow";
  expect_refused(v.validate(ed_token(c), kNow), "\"exp\" is not a NumericDate");
  c["exp"] = 1e300;
  expect_refused(v.validate(ed_token(c), kNow), "\"exp\" is out of range");
  c = claims();
  c["jti"] = 5;
  expect_refused(v.validate(ed_token(c), kNow), "\"jti\" is not a string");
}

TEST_F(JwtTest, GroupsClaim) {
  const Validator v = validator();
  json c = claims();
  c["groups"] = "dev";
  auto result = v.validate(ed_token(c), kNow);
  ASSERT_TRUE(result.has_value()) << result.error().message;
  EXPECT_EQ(result->groups, std::vector<std::string>{"dev"});
  c.erase("groups");
  result = v.validate(ed_token(c), kNow);
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->groups.empty());
  c["groups"] = {"dev", 1};
  expect_refused(v.validate(ed_token(c), kNow), "groups claim \"groups\" holds a non-string");
  c["groups"] = {{"name", "admin"}};
  expect_refused(v.validate(ed_token(c), kNow), "groups claim \"groups\" is not an array");

  IssuerConfig config = issuer_config(jwks());
  config.groups_claim = "roles";
  const Validator roles = validator_for({config});
  c = claims();  // has "groups", which this issuer does not use
  c["roles"] = {"dba"};
  result = roles.validate(ed_token(c), kNow);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->groups, std::vector<std::string>{"dba"});
}

TEST_F(JwtTest, ActChainOrder) {
  const Validator v = validator();
  json c = claims();
  // RFC 8693 §4.1: the outermost act is the current actor; nested ones acted before it.
  c["act"] = {{"sub", "deploy-svc"}, {"act", {{"sub", "ci-runner"}}}};
  const auto result = v.validate(ed_token(c), kNow);
  ASSERT_TRUE(result.has_value()) << result.error().message;
  EXPECT_EQ(result->actors, (std::vector<std::string>{"ci-runner", "deploy-svc"}));
  EXPECT_EQ(result->actors.back(), "deploy-svc");
  EXPECT_EQ(result->chain(), (std::vector<std::string>{"alice", "ci-runner", "deploy-svc"}));
  EXPECT_EQ(result->chain_string(), "alice \u2192 ci-runner \u2192 deploy-svc");
}

TEST_F(JwtTest, ActShapes) {
  const Validator v = validator();
  json c = claims();
  c["act"] = "ci-runner";
  expect_refused(v.validate(ed_token(c), kNow), "\"act\" is not an object");
  c["act"] = {"ci-runner"};
  expect_refused(v.validate(ed_token(c), kNow), "\"act\" is not an object");
  c["act"] = json::object();
  expect_refused(v.validate(ed_token(c), kNow), "\"act\" at depth 1 has no non-empty \"sub\"");
  c["act"] = {{"client_id", "ci"}};
  expect_refused(v.validate(ed_token(c), kNow), "\"act\" at depth 1 has no non-empty \"sub\"");
  c["act"] = {{"sub", 7}};
  expect_refused(v.validate(ed_token(c), kNow), "\"act\" at depth 1 has no non-empty \"sub\"");
  c["act"] = {{"sub", "deploy"}, {"act", {{"iss", "x"}}}};
  expect_refused(v.validate(ed_token(c), kNow), "\"act\" at depth 2 has no non-empty \"sub\"");
  c["act"] = {{"sub", "deploy"}, {"act", "ci"}};
  expect_refused(v.validate(ed_token(c), kNow), "\"act\" at depth 2 is not an object");
  c["act"] = {{"sub", "deploy"}, {"act", nullptr}};
  expect_refused(v.validate(ed_token(c), kNow), "\"act\" at depth 2 is not an object");
}

TEST_F(JwtTest, DelegationDepthLimit) {
  ValidatorOptions options;
  options.delegation_depth_max = 2;
  const Validator v = validator(options);
  json c = claims();
  c["act"] = {{"sub", "a2"}, {"act", {{"sub", "a1"}}}};
  EXPECT_TRUE(v.validate(ed_token(c), kNow).has_value());
  c["act"] = {{"sub", "a3"}, {"act", {{"sub", "a2"}, {"act", {{"sub", "a1"}}}}}};
  expect_refused(v.validate(ed_token(c), kNow), "delegation chain is deeper than the limit of 2");

  options.delegation_depth_max = 0;
  const Validator none = validator(options);
  c["act"] = {{"sub", "a1"}};
  expect_refused(none.validate(ed_token(c), kNow), "deeper than the limit of 0");

  // A deep chain well past the default limit is refused quickly, without recursion.
  const Validator defaults = validator();
  json deep = {{"sub", "a0"}};
  for (int i = 1; i < 200; ++i) deep = {{"sub", "a" + std::to_string(i)}, {"act", deep}};
  c["act"] = deep;
  expect_refused(defaults.validate(ed_token(c), kNow), "deeper than the limit of 8");
}

TEST_F(JwtTest, PrivilegedGroupInsideActGrantsNothing) {
  const Validator v = validator();
  json c = claims();
  c["groups"] = {"dev"};
  c["act"] = {{"sub", "deploy-svc"},
              {"groups", {"admin"}},
              {"act", {{"sub", "ci-runner"}, {"groups", {"admin", "dba"}}}}};
  const auto result = v.validate(ed_token(c), kNow);
  ASSERT_TRUE(result.has_value()) << result.error().message;
  EXPECT_EQ(result->groups, std::vector<std::string>{"dev"});
  c.erase("groups");
  const auto none = v.validate(ed_token(c), kNow);
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->groups.empty());
}

TEST_F(JwtTest, ReasonsQuoteAndTruncatePeerValues) {
  const Validator v = validator();
  json c = claims();
  c["iss"] = "evil\nFORGED AUDIT LINE " + std::string(500, 'x');
  const auto result = v.validate(ed_token(c), kNow);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().message.find('\n'), std::string::npos) << result.error().message;
  EXPECT_LT(result.error().message.size(), 200u) << result.error().message;
}

// RFC 7515 Appendix A.3: a known-answer ES256 JWS. Its claims have no "aud", so a refusal for the
// audience proves that the signature (raw R||S) verified.
TEST_F(JwtTest, Rfc7515EcdsaExample) {
  const json jwk = {{"kty", "EC"},
                    {"crv", "P-256"},
                    {"x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"},
                    {"y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}};
  IssuerConfig config = issuer_config({{"keys", {jwk}}});
  config.issuer = "joe";
  const Validator v = validator_for({config});
  const std::string token =
      "eyJhbGciOiJFUzI1NiJ9"
      ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
      "cnVlfQ"
      ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
  expect_refused(v.validate(token, 1300819380 - 100), "token has no \"aud\" claim");
  std::string tampered = token;
  tampered[tampered.size() - 3] = tampered[tampered.size() - 3] == 'A' ? 'B' : 'A';
  expect_refused(v.validate(tampered, 1300819380 - 100), "signature does not verify");
}

TEST_F(JwtTest, ConcurrentValidation) {
  const Validator v = validator();
  const std::string tokens[] = {make_token(header("RS256", "rsa"), claims(), rsa_.get()),
                                make_token(header("ES256", "ec"), claims(), ec_.get()),
                                ed_token(claims())};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const Validator copy = v;  // copies share the immutable key state
      for (int i = 0; i < 50; ++i) {
        if (!copy.validate(tokens[(t + i) % 3], kNow).has_value()) ++failures;
        if (copy.validate(tokens[(t + i) % 3] + "x", kNow).has_value()) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

// CI provenance: the configured claims are kept as text; anything else in the token is not.
TEST_F(JwtTest, ProvenanceClaims) {
  IssuerConfig config = issuer_config(jwks());
  config.provenance_claims = {"repository", "repository_id", "ref", "run_attempt", "workflow"};
  const Validator v = validator_for({config});
  json c = claims();
  c["repository"] = "acme/app";
  c["repository_id"] = 892341;
  c["ref"] = "refs/heads/main";
  c["run_attempt"] = true;
  c["environment"] = "prod";  // not configured: not provenance
  auto result = v.validate(ed_token(c), kNow);
  ASSERT_TRUE(result.has_value()) << result.error().message;
  using Claims = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(result->provenance, (Claims{{"repository", "acme/app"},
                                        {"repository_id", "892341"},
                                        {"ref", "refs/heads/main"},
                                        {"run_attempt", "true"}}));
  EXPECT_EQ(*result->provenance_value("repository_id"), "892341");
  EXPECT_EQ(result->provenance_value("environment"), nullptr);
  c["workflow"] = {{"name", "deploy"}};
  expect_refused(v.validate(ed_token(c), kNow),
                 "provenance claim \"workflow\" is not a string, integer or boolean");
  c["workflow"] = std::string(2000, 'w');
  expect_refused(v.validate(ed_token(c), kNow), "over the limit of 1024");

  // A provenance claim cannot be one that means something else.
  for (const std::string bad : {"sub", "act", "groups", "gh_lineage"}) {
    IssuerConfig wrong = issuer_config(jwks());
    wrong.provenance_claims = {bad};
    EXPECT_FALSE(Validator::create({wrong}, {}).has_value()) << bad;
  }
}

TEST_F(JwtTest, LineageAndConnectionClaims) {
  const Validator v = validator();
  json c = claims();
  auto plain = v.validate(ed_token(c), kNow);
  ASSERT_TRUE(plain.has_value());
  EXPECT_TRUE(plain->lineage.empty());
  EXPECT_FALSE(plain->connections.has_value());  // not narrowed
  c["gh_lineage"] = {"root-jti", "runner-jti"};
  c["gh_connections"] = json::array();  // narrowed to nothing
  auto narrowed = v.validate(ed_token(c), kNow);
  ASSERT_TRUE(narrowed.has_value()) << narrowed.error().message;
  EXPECT_EQ(narrowed->lineage, (std::vector<std::string>{"root-jti", "runner-jti"}));
  ASSERT_TRUE(narrowed->connections.has_value());
  EXPECT_TRUE(narrowed->connections->empty());
  c["gh_connections"] = "db-prod";
  expect_refused(v.validate(ed_token(c), kNow), "\"gh_connections\" is not an array of strings");
  c["gh_connections"] = {"db-prod", ""};
  expect_refused(v.validate(ed_token(c), kNow), "other than a non-empty string");
  c.erase("gh_connections");
  c["gh_lineage"] = json::array();
  for (int i = 0; i < 200; ++i) c["gh_lineage"].push_back("j" + std::to_string(i));
  expect_refused(v.validate(ed_token(c), kNow), "over the limit of");
}

// Configuration errors fail fast and say which issuer, which file and why.
class JwksConfigTest : public JwtTest {
 protected:
  std::string create_error(const json& keys, ValidatorOptions options = {}) {
    auto created = Validator::create({issuer_config(keys)}, options);
    return created.has_value() ? std::string("(created)") : created.error().message;
  }
};

TEST_F(JwksConfigTest, RefusesBadKeySets) {
  const auto expect = [](const std::string& error, std::string_view part) {
    EXPECT_NE(error.find(part), std::string::npos) << error << "\nexpected: " << part;
  };
  json private_jwk = testing::public_jwk(ed_.get(), "ed");
  private_jwk["d"] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
  expect(create_error({{"keys", {private_jwk}}}),
         "keys[0] (kid \"ed\"): holds private key material");
  const auto weak = testing::generate_rsa(1024);
  expect(create_error({{"keys", {testing::public_jwk(weak.get(), "weak")}}}),
         "RSA modulus is 1024 bits");
  expect(create_error({{"keys", {{{"kty", "oct"}, {"k", "c2VjcmV0"}}}}}),
         "JWKS has no usable signature verification key");
  expect(create_error({{"keys", json::array()}}), "JWKS \"keys\" is empty");
  expect(create_error({{"kty", "OKP"}}), "JWKS has no \"keys\" array");
  expect(create_error(
             {{"keys",
               {testing::public_jwk(ed_.get(), "k"), testing::public_jwk(other_ed_.get(), "k")}}}),
         "keys[1] (kid \"k\"): another usable key has the same kid");
  expect(create_error({{"keys", {testing::public_jwk(ec_.get(), "ec", "RS256")}}}),
         "its \"alg\" RS256 contradicts its key type EC P-256");
  json off_curve = testing::public_jwk(ec_.get(), "ec");
  std::string y = *gh::base64url_decode(off_curve["y"].get<std::string>());
  y[31] = static_cast<char>(y[31] ^ 1);
  off_curve["y"] = testing::b64(y);
  expect(create_error({{"keys", {off_curve}}}), "keys[0] (kid \"ec\"):");
  json short_x = testing::public_jwk(ed_.get(), "ed");
  short_x["x"] = testing::b64(std::string(31, 'a'));
  expect(create_error({{"keys", {short_x}}}), "Ed25519 \"x\" must be 32 bytes, got 31");
  json padded = testing::public_jwk(ed_.get(), "ed");
  padded["x"] = padded["x"].get<std::string>() + "=";
  expect(create_error({{"keys", {padded}}}), "member \"x\" is not non-empty unpadded base64url");

  IssuerConfig config = issuer_config({{"keys", {testing::public_jwk(ed_.get(), "ed")}}});
  config.algorithms = {"RS256"};
  auto created = Validator::create({config}, {});
  ASSERT_FALSE(created.has_value());
  expect(created.error().message, "no key fits the allowed algorithms");

  config = issuer_config(jwks());
  config.jwks_file = (dir_.path() / "missing.json").string();
  created = Validator::create({config}, {});
  ASSERT_FALSE(created.has_value());
  expect(created.error().message, "identity issuer \"ci\": jwks_file ");
  expect(created.error().message, "missing.json: cannot open");

  config = issuer_config(jwks());
  config.jwks_file = dir_.write("broken.json", "{\"keys\": [").string();
  created = Validator::create({config}, {});
  ASSERT_FALSE(created.has_value());
  expect(created.error().message, "broken.json: JWKS is not valid JSON");

  created = Validator::create({issuer_config(jwks()), issuer_config(jwks())}, {});
  ASSERT_FALSE(created.has_value());
  expect(created.error().message, "is configured twice");
  config = issuer_config(jwks());
  config.audiences.clear();
  EXPECT_FALSE(Validator::create({config}, {}).has_value());
  config = issuer_config(jwks());
  config.groups_claim = "sub";
  EXPECT_FALSE(Validator::create({config}, {}).has_value());
  EXPECT_FALSE(Validator::create({}, {}).has_value());
  EXPECT_FALSE(Validator::create({issuer_config(jwks())}, {.clock_skew_s = -1}).has_value());
  EXPECT_FALSE(Validator::create({issuer_config(jwks())}, {.token_bytes_max = 0}).has_value());
}

TEST_F(JwksConfigTest, ToleratesKeysMeantForOthers) {
  // A JWKS shared with other services may hold keys we never use; they are skipped, and a token
  // naming one gets a precise reason.
  json enc = testing::public_jwk(rsa_.get(), "enc");
  enc["use"] = "enc";
  json p384 = {{"kty", "EC"}, {"crv", "P-384"}, {"x", "AA"}, {"y", "AA"}, {"kid", "p384"}};
  json rs512 = testing::public_jwk(rsa_.get(), "rs512", "RS512");
  json ops = testing::public_jwk(ed_.get(), "ops");
  ops["key_ops"] = {"sign"};
  const Validator v = validator_for(
      {issuer_config({{"keys", {enc, p384, rs512, ops, testing::public_jwk(ed_.get(), "ed")}}})});
  EXPECT_TRUE(v.validate(ed_token(claims()), kNow).has_value());
  expect_refused(v.validate(make_token(header("RS256", "enc"), claims(), rsa_.get()), kNow),
                 "key \"enc\" of issuer \"ci\" cannot verify: its \"use\" is \"enc\", not \"sig\"");
  expect_refused(v.validate(make_token(header("EdDSA", "ops"), claims(), ed_.get()), kNow),
                 "do not include \"verify\"");
  // No kid: only one usable key, so it is the one.
  EXPECT_TRUE(
      v.validate(make_token(json{{"alg", "EdDSA"}}, claims(), ed_.get()), kNow).has_value());
}

}  // namespace
}  // namespace gh::identity
