// The per-shard validation cache: repeated tokens hit, refusals are not cached, expiry still
// applies to cached tokens, and the cache stays bounded.
#include "core/identity/validation_cache.hpp"

#include <gtest/gtest.h>

#include "core/identity/issuer.hpp"
#include "tests/unit/core/identity/test_keys.hpp"

namespace gh::identity {
namespace {

constexpr int64_t kNow = 1'700'000'000;

class ValidationCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(keygen(dir_.path() / "k.pem", dir_.path() / "k.jwks"));
    auto minter = TokenMinter::load(dir_.path() / "k.pem");
    ASSERT_TRUE(minter);
    minter_.emplace(std::move(*minter));
    IssuerConfig config;
    config.issuer = "gatehouse";
    config.audiences = {"gatehouse"};
    config.jwks_file = (dir_.path() / "k.jwks").string();
    auto validator = Validator::create({config}, ValidatorOptions{.clock_skew_s = 10});
    ASSERT_TRUE(validator) << validator.error().message;
    validator_.emplace(std::move(*validator));
  }

  std::string token(const std::string& subject, int64_t ttl_s = 600) {
    TokenRequest r;
    r.subject = subject;
    r.groups = {"devs"};
    r.ttl_s = ttl_s;
    r.issuer = "gatehouse";
    r.audience = "gatehouse";
    return *minter_->issue(r, kNow);
  }

  testing::TempDir dir_;
  std::optional<TokenMinter> minter_;
  std::optional<Validator> validator_;
};

TEST_F(ValidationCacheTest, RepeatedTokenIsAnsweredFromTheCache) {
  ValidationCache cache(*validator_);
  const std::string t = token("alice");
  auto first = cache.validate(t, kNow);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(cache.hits(), 0u);
  auto second = cache.validate(t, kNow + 5);
  ASSERT_TRUE(second);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(second->subject, "alice");
  EXPECT_EQ(second->groups, std::vector<std::string>{"devs"});
}

TEST_F(ValidationCacheTest, ExpiryAppliesToCachedTokens) {
  ValidationCache cache(*validator_);
  const std::string t = token("alice", 60);
  ASSERT_TRUE(cache.validate(t, kNow));
  EXPECT_TRUE(cache.validate(t, kNow + 60 + 9));   // within the 10 s skew
  auto late = cache.validate(t, kNow + 60 + 10);  // past it: refused like any expired token
  ASSERT_FALSE(late);
  EXPECT_NE(late.error().message.find("expired"), std::string::npos) << late.error().message;
  EXPECT_EQ(cache.size(), 0u);
}

TEST_F(ValidationCacheTest, RefusalsAreNotCachedAndTamperedTokensMiss) {
  ValidationCache cache(*validator_);
  const std::string t = token("alice");
  ASSERT_TRUE(cache.validate(t, kNow));
  std::string tampered = t;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(cache.validate(tampered, kNow));
  EXPECT_FALSE(cache.validate(tampered, kNow));
  EXPECT_EQ(cache.size(), 1u);
}

TEST_F(ValidationCacheTest, StaysBounded) {
  ValidationCache cache(*validator_, 4);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(cache.validate(token("user" + std::to_string(i)), kNow));
  EXPECT_EQ(cache.size(), 4u);
}

}  // namespace
}  // namespace gh::identity
