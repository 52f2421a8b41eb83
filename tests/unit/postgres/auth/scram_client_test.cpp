// Unit tests of the SCRAM-SHA-256 client: RFC 7677 vector, an independent server, hostile input.
// Sans-I/O; the reference server below uses different OpenSSL entry points than the client.
#include "protocols/postgres/auth/scram_client.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <random>
#include <span>

#include "core/base64.hpp"

namespace gh::pg {
namespace {

constexpr std::string_view kRfcNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

// RFC 7677 §3: the whole exchange, byte for byte.
TEST(ScramClient, Rfc7677Vector) {
  ScramClient client("pencil", std::string(kRfcNonce), "user");
  EXPECT_EQ(client.client_first_message(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  auto final_message = client.client_final_message(kRfcServerFirst);
  ASSERT_TRUE(final_message.has_value()) << final_message.error().message;
  EXPECT_EQ(*final_message,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  EXPECT_FALSE(client.server_verified());
  auto verified = client.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  EXPECT_TRUE(verified.has_value()) << verified.error().message;
  EXPECT_TRUE(client.server_verified());
}

TEST(ScramClient, PostgresStyleClientFirstHasEmptyUser) {
  ScramClient client("secret", "abc");
  EXPECT_EQ(client.client_first_message(), "n,,n=,r=abc");
}

TEST(ScramClient, UsernameIsEscaped) {
  ScramClient client("secret", "abc", "a,b=c");
  EXPECT_EQ(client.client_first_message(), "n,,n=a=2Cb=3Dc,r=abc");
}

TEST(ScramClient, RandomNonceIs18BytesOfBase64) {
  ScramClient a("pw");
  ScramClient b("pw");
  const std::string first_a = a.client_first_message();
  const std::string first_b = b.client_first_message();
  ASSERT_TRUE(first_a.starts_with("n,,n=,r="));
  const std::string nonce = first_a.substr(8);
  EXPECT_EQ(nonce.size(), 24u);
  auto raw = base64_decode(nonce);
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(raw->size(), kScramNonceRawBytes);
  EXPECT_NE(first_a, first_b);
}

// A reference SCRAM server built from the RFC 5802 §3 formulas with OpenSSL's one-shot
// PKCS5_PBKDF2_HMAC, HMAC and SHA256, so that the client is checked against an independent path.
struct ReferenceServer {
  std::string password, salt, nonce_suffix = "SERVERPART";
  int iterations = 4096;

  std::array<unsigned char, 32> salted() const {
    std::array<unsigned char, 32> out{};
    EXPECT_EQ(PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                                reinterpret_cast<const unsigned char*>(salt.data()),
                                static_cast<int>(salt.size()), iterations, EVP_sha256(),
                                static_cast<int>(out.size()), out.data()),
              1);
    return out;
  }
  static std::array<unsigned char, 32> hmac(std::span<const unsigned char> key,
                                            std::string_view data) {
    std::array<unsigned char, 32> out{};
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
    EXPECT_EQ(len, 32u);
    return out;
  }

  std::string first(std::string_view client_first) const {
    const std::string_view nonce = client_first.substr(client_first.find(",r=") + 3);
    return "r=" + std::string(nonce) + nonce_suffix + ",s=" + base64_encode(salt) +
           ",i=" + std::to_string(iterations);
  }

  // Checks the proof as PostgreSQL's verify_client_proof does; returns server-final or "".
  std::string final_for(std::string_view client_first, std::string_view server_first,
                        std::string_view client_final) const {
    const size_t p = client_final.find(",p=");
    if (p == std::string_view::npos) return "";
    const std::string auth_message = std::string(client_first.substr(3)) + "," +
                                     std::string(server_first) + "," +
                                     std::string(client_final.substr(0, p));
    const auto salted_password = salted();
    const auto client_key = hmac(salted_password, "Client Key");
    std::array<unsigned char, 32> stored_key{};
    SHA256(client_key.data(), client_key.size(), stored_key.data());
    const auto client_signature = hmac(stored_key, auth_message);
    auto proof = base64_decode(client_final.substr(p + 3));
    if (!proof || proof->size() != 32) return "";
    std::array<unsigned char, 32> recovered_key{};
    for (size_t i = 0; i < 32; ++i) {
      recovered_key[i] = static_cast<unsigned char>((*proof)[i]) ^ client_signature[i];
    }
    std::array<unsigned char, 32> recovered_stored{};
    SHA256(recovered_key.data(), recovered_key.size(), recovered_stored.data());
    if (recovered_stored != stored_key) return "e=invalid-proof";
    const auto server_signature = hmac(hmac(salted_password, "Server Key"), auth_message);
    return "v=" + base64_encode(
                      std::string_view(reinterpret_cast<const char*>(server_signature.data()), 32));
  }
};

struct Outcome {
  std::string server_final;
  bool verified = false;
};

Outcome run_exchange(ScramClient& client, const ReferenceServer& server) {
  const std::string client_first = client.client_first_message();
  const std::string server_first = server.first(client_first);
  auto client_final = client.client_final_message(server_first);
  EXPECT_TRUE(client_final.has_value()) << client_final.error().message;
  if (!client_final) return {};
  Outcome out;
  out.server_final = server.final_for(client_first, server_first, *client_final);
  out.verified = client.verify_server_final(out.server_final).has_value();
  return out;
}

TEST(ScramClient, AgreesWithReferenceServer) {
  const struct {
    std::string password;
    std::string salt;
    int iterations;
  } cases[] = {
      {"secret", "0123456789abcdef", 4096},
      {"", "s", 1},                                      // empty password, tiny salt, one iteration
      {"p\x01w\x7f", std::string("\0\xff\x80", 3), 2},   // ASCII controls are used unchanged
      {"caf\xc3\xa9 \xc3\x9f", "saltsaltsaltsalt", 10},  // Latin-1: SASLprep is the identity
      {std::string(1000, 'x'), std::string(64, '\x5a'), 100},
  };
  for (const auto& c : cases) {
    ReferenceServer server{c.password, c.salt};
    server.iterations = c.iterations;
    ScramClient client(c.password);
    const Outcome out = run_exchange(client, server);
    EXPECT_TRUE(out.server_final.starts_with("v=")) << out.server_final;
    EXPECT_TRUE(out.verified);
    EXPECT_TRUE(client.server_verified());
  }
}

TEST(ScramClient, SaslprepMapsNonAsciiSpaceBeforeDerivingKeys) {
  // U+00A0 NO-BREAK SPACE maps to SPACE: the server stored the verifier of "pass word".
  ReferenceServer server{"pass word", "0123456789abcdef"};
  ScramClient client("pass\xc2\xa0word");
  EXPECT_TRUE(run_exchange(client, server).verified);
}

TEST(ScramClient, WrongPasswordIsRejectedByServerAndReportedFromE) {
  ReferenceServer server{"right", "0123456789abcdef"};
  ScramClient client("wrong");
  const Outcome out = run_exchange(client, server);
  EXPECT_EQ(out.server_final, "e=invalid-proof");
  EXPECT_FALSE(out.verified);
  EXPECT_FALSE(client.server_verified());
}

TEST(ScramClient, ServerErrorIsAnErrorNamingTheReason) {
  ScramClient client("pencil", std::string(kRfcNonce), "user");
  client.client_first_message();
  ASSERT_TRUE(client.client_final_message(kRfcServerFirst).has_value());
  auto r = client.verify_server_final("e=other-error");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("other-error"), std::string::npos) << r.error().message;
}

TEST(ScramClient, WrongServerSignatureIsRejected) {
  const std::string_view bad_finals[] = {
      "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=",  // last bits differ
      "v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
      "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl9",     // truncated
      "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",  // bad padding
      "v=",
      "",
      "x=1",
      "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
  };
  for (std::string_view bad : bad_finals) {
    ScramClient client("pencil", std::string(kRfcNonce), "user");
    client.client_first_message();
    ASSERT_TRUE(client.client_final_message(kRfcServerFirst).has_value());
    EXPECT_FALSE(client.verify_server_final(bad).has_value()) << bad;
    EXPECT_FALSE(client.server_verified());
  }
}

TEST(ScramClient, ServerFinalExtensionsAfterVerifierAreAccepted) {
  ScramClient client("pencil", std::string(kRfcNonce), "user");
  client.client_first_message();
  ASSERT_TRUE(client.client_final_message(kRfcServerFirst).has_value());
  EXPECT_TRUE(
      client.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=y").has_value());
}

gh::Result<std::string> final_for(std::string_view server_first) {
  ScramClient client("pencil", std::string(kRfcNonce), "user");
  client.client_first_message();
  return client.client_final_message(server_first);
}

TEST(ScramClient, RejectsBadServerFirst) {
  const std::string too_long = "r=rOprNGfwEbeRWgbNEkqOx,s=QQ==,i=1," + std::string(5000, 'a');
  const std::string_view cases[] = {
      // nonce
      "r=XOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",     // not our prefix
      "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",         // no server part
      "r=rOprNGfw,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",                     // shorter than ours
      "r=rOprNGfwEbeRWgbNEkqO\x01x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",    // unprintable
      "r=rOprNGfwEbeRWgbNEkqO x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",       // space
      "s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqOx,i=4096",        // order
      "m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",  // mandatory extension
      // salt
      "r=rOprNGfwEbeRWgbNEkqOx,i=4096",
      "r=rOprNGfwEbeRWgbNEkqOx,s=,i=4096",
      "r=rOprNGfwEbeRWgbNEkqOx,s=***,i=4096",
      "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ,i=4096",  // padding missing
      // iterations
      "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==",
      "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=",
      "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
      "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
      "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=04096",
      "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x",
      "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i= 4096",
      "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001",
      "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4294967297",
      "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999999999999999",
      // framing
      "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,",
      "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,junk",
      "r=rOprNGfwEbeRWgbNEkqOx,,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
      "",
      too_long,
  };
  for (std::string_view bad : cases) {
    auto r = final_for(bad);
    EXPECT_FALSE(r.has_value()) << "accepted: " << bad;
  }
}

TEST(ScramClient, IterationBoundsAreInclusive) {
  EXPECT_TRUE(final_for("r=rOprNGfwEbeRWgbNEkqOx,s=QQ==,i=1").has_value());
  // The ceiling itself is accepted; this derives a million iterations (about a second).
  EXPECT_TRUE(final_for("r=rOprNGfwEbeRWgbNEkqOx,s=QQ==,i=1000000").has_value());
}

TEST(ScramClient, IterationErrorNamesTheCount) {
  auto r = final_for("r=rOprNGfwEbeRWgbNEkqOx,s=QQ==,i=2000000000");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("2000000000"), std::string::npos) << r.error().message;
}

TEST(ScramClient, ServerFirstExtensionsAreIgnored) {
  EXPECT_TRUE(final_for("r=rOprNGfwEbeRWgbNEkqOx,s=QQ==,i=1,x=anything,y=").has_value());
}

TEST(ScramClient, CachedKeysGiveTheSameProofAndAreRederivedOnNewSalt) {
  ScramClient first("pencil", std::string(kRfcNonce), "user");
  first.client_first_message();
  const auto expected = first.client_final_message(kRfcServerFirst);
  ASSERT_TRUE(expected.has_value());
  ASSERT_TRUE(first.keys().has_value());
  EXPECT_EQ(first.keys()->iterations, 4096u);

  // A cache entry that belongs to the wrong password still yields the right proof when it
  // matches the salt and count: that is the point of caching, so prove it is really used.
  ScramKeys poisoned = *first.keys();
  poisoned.client_key.fill(0);
  ScramClient cached("pencil", std::string(kRfcNonce), "user");
  cached.use_keys(poisoned);
  cached.client_first_message();
  auto with_poison = cached.client_final_message(kRfcServerFirst);
  ASSERT_TRUE(with_poison.has_value());
  EXPECT_NE(*with_poison, *expected);

  ScramClient reused("pencil", std::string(kRfcNonce), "user");
  reused.use_keys(*first.keys());
  reused.client_first_message();
  auto reused_final = reused.client_final_message(kRfcServerFirst);
  ASSERT_TRUE(reused_final.has_value());
  EXPECT_EQ(*reused_final, *expected);

  // Different iteration count: the stale cache must be ignored and keys derived anew.
  ReferenceServer server{"pencil", "0123456789abcdef"};
  server.iterations = 10;
  ScramClient stale("pencil");
  stale.use_keys(poisoned);
  EXPECT_TRUE(run_exchange(stale, server).verified);
  ASSERT_TRUE(stale.keys().has_value());
  EXPECT_EQ(stale.keys()->iterations, 10u);
  EXPECT_EQ(stale.keys()->salt, "0123456789abcdef");
}

// Random and truncated server messages: errors, never crashes (run under the sanitizer build).
TEST(ScramClient, SurvivesTruncationsAndRandomBytes) {
  const std::string full = std::string(kRfcServerFirst);
  for (size_t n = 0; n <= full.size(); ++n) {
    auto r = final_for(full.substr(0, n));
    if (n == full.size()) {
      EXPECT_TRUE(r.has_value());
    }
  }
  std::mt19937 rng(12345);
  for (int round = 0; round < 500; ++round) {
    std::string msg = "r=rOprNGfwEbeRWgbNEkqO";
    const size_t len = rng() % 64;
    for (size_t i = 0; i < len; ++i) {
      msg.push_back(static_cast<char>("rsi=,ABC019+/\x00\xff"[rng() % 15]));
    }
    (void)final_for(msg);
    ScramClient client("pencil", std::string(kRfcNonce), "user");
    client.client_first_message();
    ASSERT_TRUE(client.client_final_message(kRfcServerFirst).has_value());
    EXPECT_FALSE(client.verify_server_final(msg.substr(20)).has_value());
  }
}

}  // namespace
}  // namespace gh::pg
