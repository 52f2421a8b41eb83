// Test support for the admin API: the gateway's own issuer (a real keygen in a temporary
// directory), an external CI issuer with a test key, and a Validator that trusts both.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/admin/token_exchange.hpp"
#include "core/identity/issuer.hpp"
#include "core/identity/jwt.hpp"
#include "tests/unit/core/identity/test_keys.hpp"

namespace gh::admin::testing {

inline constexpr int64_t kNow = 1'700'000'000;
inline const std::string kGateway = "gatehouse";
inline const std::string kCiIssuer = "https://token.actions.githubusercontent.com";

class ExchangeFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<identity::testing::TempDir>();
    const auto key = dir_->path() / "issuer.pem";
    const auto jwks = dir_->path() / "issuer.jwks.json";
    ASSERT_TRUE(identity::keygen(key, jwks).has_value());
    auto minter = identity::TokenMinter::load(key);
    ASSERT_TRUE(minter.has_value());
    minter_ = std::make_unique<identity::TokenMinter>(std::move(*minter));
    ci_key_ = identity::testing::generate_ed25519();
    const nlohmann::json ci_jwks = {
        {"keys", {identity::testing::public_jwk(ci_key_.get(), "ci", "EdDSA")}}};
    const auto ci_jwks_file = dir_->write("ci.jwks.json", ci_jwks.dump());
    const std::vector<std::string> provenance = {"repository", "repository_id", "ref", "run_id"};
    identity::ValidatorOptions options;
    options.clock_skew_s = 0;
    options.delegation_depth_max = 3;
    auto validator =
        identity::Validator::create({identity::IssuerConfig{.name = "builtin",
                                                            .issuer = kGateway,
                                                            .audiences = {kGateway},
                                                            .jwks_file = jwks.string(),
                                                            .groups_claim = "groups",
                                                            .algorithms = {"EdDSA"},
                                                            .provenance_claims = provenance},
                                     identity::IssuerConfig{.name = "github",
                                                            .issuer = kCiIssuer,
                                                            .audiences = {kGateway},
                                                            .jwks_file = ci_jwks_file.string(),
                                                            .groups_claim = "groups",
                                                            .algorithms = {"EdDSA"},
                                                            .provenance_claims = provenance}},
                                    options);
    ASSERT_TRUE(validator.has_value()) << validator.error().message;
    validator_ = std::make_unique<identity::Validator>(std::move(*validator));
  }
  static void TearDownTestSuite() {
    validator_.reset();
    minter_.reset();
    ci_key_.reset();
    dir_.reset();
  }

  static ExchangePolicy policy() {
    ExchangePolicy p;
    p.issuer = kGateway;
    p.audience = kGateway;
    p.ttl_default_s = 900;
    p.delegation_depth_max = 3;
    p.service_actors = {config::ServiceActorConfig{"deploy-svc", {"deployers"}}};
    p.connections = {"db-prod", "db-staging"};
    return p;
  }

  // A token of the gateway's own issuer, issued at kNow.
  static std::string own_token(const std::string& subject, std::vector<std::string> groups,
                               int64_t ttl_s = 600, std::vector<std::string> actors = {},
                               nlohmann::json extra = nlohmann::json::object()) {
    identity::TokenRequest request;
    request.subject = subject;
    request.groups = std::move(groups);
    request.ttl_s = ttl_s;
    request.actors = std::move(actors);
    request.audience = kGateway;
    request.issuer = kGateway;
    request.extra_claims = std::move(extra);
    auto token = minter_->issue(request, kNow);
    EXPECT_TRUE(token.has_value()) << token.error().message;
    return *token;
  }

  // A token of the external CI issuer, with whatever claims the test gives.
  static std::string ci_token(const nlohmann::json& claims) {
    return identity::testing::make_token({{"alg", "EdDSA"}, {"kid", "ci"}, {"typ", "JWT"}}, claims,
                                         ci_key_.get());
  }

  static Params form(const std::string& subject_token) {
    return {{"grant_type", kTokenExchangeGrant},
            {"subject_token", subject_token},
            {"subject_token_type", kJwtTokenType}};
  }

  static inline std::unique_ptr<identity::testing::TempDir> dir_;
  static inline std::unique_ptr<identity::TokenMinter> minter_;
  static inline identity::testing::Key ci_key_;
  static inline std::unique_ptr<identity::Validator> validator_;
};

}  // namespace gh::admin::testing
