// RFC 8693 token exchange: the minted token nests the chain and only ever narrows; every
// violation is an RFC 6749 error with a reason for the trail. Sans-I/O (keys in a temp folder).
#include "core/admin/token_exchange.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "core/identity/revocation.hpp"
#include "tests/unit/core/admin/exchange_fixture.hpp"

namespace gh::admin {
namespace {

using testing::kNow;

class TokenExchangeTest : public testing::ExchangeFixture {
 protected:
  TokenExchangeTest() : exchange_(*validator_, *minter_, policy()) {}

  std::expected<ExchangeIssued, ExchangeError> run(const Params& form, int64_t now_s = kNow,
                                                   const identity::RevocationSet& revoked = {}) {
    audit_ = AuditEntry{};
    return exchange_.exchange(form, revoked, now_s, audit_);
  }

  identity::Identity validated(const std::string& token, int64_t now_s = kNow) {
    auto identity = validator_->validate(token, now_s);
    EXPECT_TRUE(identity.has_value()) << identity.error().message;
    return identity.value_or(identity::Identity{});
  }

  // Expects a refusal with this RFC 6749 error code and a description containing `text`.
  void expect_refused(const std::expected<ExchangeIssued, ExchangeError>& result,
                      std::string_view error, std::string_view text) {
    ASSERT_FALSE(result.has_value()) << "granted; expected " << error << ": " << text;
    EXPECT_EQ(result.error().error, error) << result.error().description;
    EXPECT_NE(result.error().description.find(text), std::string::npos)
        << result.error().description;
    EXPECT_FALSE(result.error().reason.empty());
  }

  TokenExchange exchange_;
  AuditEntry audit_;
};

TEST_F(TokenExchangeTest, ActorTokenNestsTheChainAndNarrows) {
  const std::string alice = own_token("alice", {"deployers", "dba"}, 600);
  const std::string runner = own_token("ci-runner", {"runners"}, 600);
  Params f = form(alice);
  f.emplace_back("actor_token", runner);
  f.emplace_back("actor_token_type", kJwtTokenType);
  f.emplace_back("scope", "deployers");
  f.emplace_back("audience", "db-prod");
  f.emplace_back("ttl", "5m");
  const auto issued = run(f);
  ASSERT_TRUE(issued.has_value()) << issued.error().reason;
  EXPECT_EQ(issued->chain, (std::vector<std::string>{"alice", "ci-runner"}));
  EXPECT_EQ(issued->expires_in_s, 300);

  const identity::Identity child = validated(issued->token.token);
  EXPECT_EQ(child.issuer, testing::kGateway);
  EXPECT_EQ(child.subject, "alice");  // sub unchanged
  EXPECT_EQ(child.actors, std::vector<std::string>{"ci-runner"});
  EXPECT_EQ(child.groups, std::vector<std::string>{"deployers"});  // the runner's own are not added
  ASSERT_TRUE(child.connections.has_value());
  EXPECT_EQ(*child.connections, std::vector<std::string>{"db-prod"});
  EXPECT_EQ(child.expires_at, kNow + 300);
  // Revoking either parent reaches the child: both ids are in its lineage.
  const identity::Identity parent = validated(alice);
  const identity::Identity actor = validated(runner);
  EXPECT_EQ(child.lineage, (std::vector<std::string>{parent.token_id, actor.token_id}));

  const nlohmann::json body = exchange_response_body(*issued);
  EXPECT_EQ(body["issued_token_type"], kJwtTokenType);
  EXPECT_EQ(body["token_type"], "N_A");
  EXPECT_EQ(body["expires_in"], 300);
  EXPECT_EQ(body["scope"], "deployers");
  EXPECT_EQ(body["access_token"], issued->token.token);

  EXPECT_EQ(audit_.chain, (std::vector<std::string>{"alice", "ci-runner"}));
  EXPECT_EQ(audit_.lineage, child.lineage);
}

TEST_F(TokenExchangeTest, WithoutNarrowingTheChildKeepsGroupsAndParentExpiry) {
  const std::string alice = own_token("alice", {"deployers"}, 120);
  Params f = form(alice);
  f.emplace_back("actor", "deploy-svc");
  const auto issued = run(f, kNow + 20);
  ASSERT_TRUE(issued.has_value()) << issued.error().reason;
  const identity::Identity child = validated(issued->token.token, kNow + 20);
  EXPECT_EQ(child.groups, std::vector<std::string>{"deployers"});
  EXPECT_FALSE(child.connections.has_value());
  // The default lifetime (15 min) is cut to what the parent has left.
  EXPECT_EQ(child.expires_at, kNow + 120);
  EXPECT_EQ(issued->expires_in_s, 100);
}

TEST_F(TokenExchangeTest, WideningScopeIsRefusedAtEveryHop) {
  const std::string alice = own_token("alice", {"deployers", "dba"});
  Params f = form(alice);
  f.emplace_back("actor", "deploy-svc");
  f.emplace_back("scope", "deployers admins");
  expect_refused(run(f), "invalid_scope",
                 "scope \"admins\" is not among the subject token's groups");

  // A narrowed child cannot get back what its parent dropped.
  Params narrow = form(alice);
  narrow.emplace_back("actor", "deploy-svc");
  narrow.emplace_back("scope", "deployers");
  const auto child = run(narrow);
  ASSERT_TRUE(child.has_value()) << child.error().reason;
  Params again = form(child->token.token);
  again.emplace_back("actor", "deploy-svc");
  again.emplace_back("scope", "dba");
  expect_refused(run(again), "invalid_scope", "\"dba\"");

  Params malformed = form(alice);
  malformed.emplace_back("scope", "deployers  dba");  // two spaces: an empty scope-token
  expect_refused(run(malformed), "invalid_scope", "space-separated");
}

TEST_F(TokenExchangeTest, WideningConnectionsIsRefused) {
  const std::string alice = own_token("alice", {"deployers"});
  Params f = form(alice);
  f.emplace_back("audience", "db-staging");
  const auto child = run(f);
  ASSERT_TRUE(child.has_value()) << child.error().reason;
  Params wider = form(child->token.token);
  wider.emplace_back("audience", "db-prod");
  expect_refused(run(wider), "invalid_target",
                 "connection \"db-prod\" is not among the subject token's connections");
  Params unknown = form(alice);
  unknown.emplace_back("resource", "db-nowhere");
  expect_refused(run(unknown), "invalid_target", "no connection named \"db-nowhere\"");
}

TEST_F(TokenExchangeTest, ExtendingTheLifetimeIsRefused) {
  const std::string alice = own_token("alice", {"deployers"}, 600);
  Params f = form(alice);
  f.emplace_back("ttl", "11m");
  expect_refused(run(f), "invalid_request", "would outlive the subject token");
  // The actor token's expiry bounds the child too.
  const std::string runner = own_token("ci-runner", {}, 60);
  Params g = form(alice);
  g.emplace_back("actor_token", runner);
  g.emplace_back("actor_token_type", kJwtTokenType);
  g.emplace_back("ttl", "2m");
  expect_refused(run(g), "invalid_request", "would outlive the actor token");
  Params bad = form(alice);
  bad.emplace_back("ttl", "forever");
  expect_refused(run(bad), "invalid_request", "ttl must be a duration");
}

TEST_F(TokenExchangeTest, AnExpiredParentCannotBeExchanged) {
  const std::string alice = own_token("alice", {"deployers"}, 60);
  expect_refused(run(form(alice), kNow + 60), "invalid_request", "subject_token is not valid");
  EXPECT_NE(run(form(alice), kNow + 60).error().reason.find("expired"), std::string::npos);
  EXPECT_TRUE(run(form(alice), kNow + 59).has_value());
}

TEST_F(TokenExchangeTest, DepthIsBoundedByDelegationDepthMax) {
  std::string token = own_token("alice", {"deployers"});
  for (const char* actor : {"hop-1", "hop-2", "hop-3"}) {
    Params f = form(token);
    f.emplace_back("actor_token", own_token(actor, {}));
    f.emplace_back("actor_token_type", kJwtTokenType);
    const auto issued = run(f);
    ASSERT_TRUE(issued.has_value()) << actor << ": " << issued.error().reason;
    token = issued->token.token;
  }
  EXPECT_EQ(validated(token).actors, (std::vector<std::string>{"hop-1", "hop-2", "hop-3"}));
  Params f = form(token);
  f.emplace_back("actor_token", own_token("hop-4", {}));
  f.emplace_back("actor_token_type", kJwtTokenType);
  expect_refused(run(f), "invalid_request", "delegation depth 4 exceeds the limit of 3");
  // The refusal is attributed to the chain that was asked for.
  EXPECT_EQ(audit_.chain.back(), "hop-4");
}

TEST_F(TokenExchangeTest, RevokedParentsAndActorsAreRefused) {
  const std::string alice = own_token("alice", {"deployers"});
  const std::string runner = own_token("ci-runner", {});
  const identity::Identity parent = validated(alice);
  Params f = form(alice);
  f.emplace_back("actor_token", runner);
  f.emplace_back("actor_token_type", kJwtTokenType);
  const auto child = run(f);
  ASSERT_TRUE(child.has_value());

  const identity::RevocationSet by_jti({identity::Revocation{identity::RevocationKind::kTokenId,
                                                             parent.token_id, kNow, "admin", ""}});
  expect_refused(run(f, kNow, by_jti), "invalid_request", "subject_token is not valid");
  // The child minted before the revocation is covered through its lineage.
  EXPECT_NE(by_jti.find(validated(child->token.token)), nullptr);
  Params grandchild = form(child->token.token);
  grandchild.emplace_back("actor", "deploy-svc");
  expect_refused(run(grandchild, kNow, by_jti), "invalid_request", "subject_token is not valid");

  const identity::RevocationSet by_actor(
      {identity::Revocation{identity::RevocationKind::kActor, "ci-runner", kNow, "admin", ""}});
  expect_refused(run(f, kNow, by_actor), "invalid_request", "actor_token is not valid");
}

TEST_F(TokenExchangeTest, ServiceActorsNeedAnAllowedGroup) {
  Params f = form(own_token("alice", {"deployers"}));
  f.emplace_back("actor", "deploy-svc");
  const auto issued = run(f);
  ASSERT_TRUE(issued.has_value()) << issued.error().reason;
  EXPECT_EQ(validated(issued->token.token).actors, std::vector<std::string>{"deploy-svc"});

  Params outsider = form(own_token("mallory", {"interns"}));
  outsider.emplace_back("actor", "deploy-svc");
  expect_refused(run(outsider), "invalid_request", "may not name actor \"deploy-svc\"");
  Params unknown = form(own_token("alice", {"deployers"}));
  unknown.emplace_back("actor", "root");
  expect_refused(run(unknown), "invalid_request", "not a service identity");
}

TEST_F(TokenExchangeTest, MayActRestrictsTheNewActor) {
  const std::string alice =
      own_token("alice", {"deployers"}, 600, {}, {{"may_act", {{"sub", "ci-runner"}}}});
  Params f = form(alice);
  f.emplace_back("actor", "deploy-svc");
  expect_refused(run(f), "invalid_request", "may_act does not allow actor \"deploy-svc\"");
  Params g = form(alice);
  g.emplace_back("actor_token", own_token("ci-runner", {}));
  g.emplace_back("actor_token_type", kJwtTokenType);
  EXPECT_TRUE(run(g).has_value());
}

TEST_F(TokenExchangeTest, MalformedRequests) {
  const std::string alice = own_token("alice", {"deployers"});
  expect_refused(run({}), "invalid_request", "grant_type is missing");
  expect_refused(run({{"grant_type", "client_credentials"}}), "unsupported_grant_type",
                 "grant_type must be");
  expect_refused(run({{"grant_type", kTokenExchangeGrant}}), "invalid_request",
                 "subject_token is missing");
  Params no_type = {{"grant_type", kTokenExchangeGrant}, {"subject_token", alice}};
  expect_refused(run(no_type), "invalid_request", "subject_token_type is missing");
  Params twice = form(alice);
  twice.emplace_back("scope", "a");
  twice.emplace_back("scope", "b");
  expect_refused(run(twice), "invalid_request", "given more than once");
  Params half_actor = form(alice);
  half_actor.emplace_back("actor_token", alice);
  expect_refused(run(half_actor), "invalid_request", "go together");
  Params both = form(alice);
  both.emplace_back("actor_token", alice);
  both.emplace_back("actor_token_type", kJwtTokenType);
  both.emplace_back("actor", "deploy-svc");
  expect_refused(run(both), "invalid_request", "not both");
  Params saml = form(alice);
  saml[2].second = "urn:ietf:params:oauth:token-type:saml2";
  expect_refused(run(saml), "invalid_request", "subject_token_type must be");
  expect_refused(run(form("not.a.token")), "invalid_request", "subject_token is not valid");
}

// RFC 8693 §4.1: an external token's act chain is kept as it is; only its top-level claims grant.
TEST_F(TokenExchangeTest, ExternalActChainIsKeptAndNestedActorsGrantNothing) {
  const nlohmann::json claims = {
      {"iss", testing::kCiIssuer},
      {"sub", "repo:acme/app:ref:refs/heads/main"},
      {"aud", testing::kGateway},
      {"iat", kNow},
      {"exp", kNow + 600},
      {"jti", "gha-run-1"},
      {"groups", {"deployers"}},
      {"repository", "acme/app"},
      {"repository_id", 892341},
      {"ref", "refs/heads/main"},
      {"act", {{"sub", "ci-runner"}, {"groups", {"admins"}}, {"act", {{"sub", "alice"}}}}}};
  const std::string external = ci_token(claims);
  const identity::Identity identity = validated(external);
  EXPECT_EQ(identity.actors, (std::vector<std::string>{"alice", "ci-runner"}));
  EXPECT_EQ(identity.groups, std::vector<std::string>{"deployers"});

  Params widen = form(external);
  widen.emplace_back("scope", "admins");
  expect_refused(run(widen), "invalid_scope", "\"admins\"");

  Params f = form(external);
  f.emplace_back("actor", "deploy-svc");
  const auto issued = run(f);
  ASSERT_TRUE(issued.has_value()) << issued.error().reason;
  const identity::Identity child = validated(issued->token.token);
  EXPECT_EQ(child.chain(), (std::vector<std::string>{"repo:acme/app:ref:refs/heads/main", "alice",
                                                     "ci-runner", "deploy-svc"}));
  EXPECT_EQ(child.groups, std::vector<std::string>{"deployers"});
  // CI provenance travels with the chain, so that each hop is attributed to the same run.
  ASSERT_NE(child.provenance_value("repository_id"), nullptr);
  EXPECT_EQ(*child.provenance_value("repository_id"), "892341");
  ASSERT_NE(child.provenance_value("ref"), nullptr);
  EXPECT_EQ(*child.provenance_value("ref"), "refs/heads/main");
  EXPECT_EQ(child.lineage, std::vector<std::string>{"gha-run-1"});
}

}  // namespace
}  // namespace gh::admin
