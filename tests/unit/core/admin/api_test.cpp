// The admin API as its HTTP clients see it, without sockets: routing, bearer authentication,
// RFC 6749 error bodies, revocation, and the audit entry each request leaves.
#include "core/admin/api.hpp"

#include <gtest/gtest.h>

#include "core/admin/http.hpp"
#include "core/admin/reviews.hpp"
#include "tests/unit/core/admin/exchange_fixture.hpp"

namespace gh::admin {
namespace {

using testing::kNow;

class AdminApiTest : public testing::ExchangeFixture {
 protected:
  void SetUp() override {
    config_.identity.builtin = config::BuiltinIssuerConfig{};
    config_.identity.options.delegation_depth_max = 3;
    config_.admin = config::AdminConfig{};
    config_.admin->admin_groups = {"gh-admins"};
    config_.admin->service_actors = {config::ServiceActorConfig{"deploy-svc", {"deployers"}}};
    for (const char* name : {"db-prod", "db-staging"}) {
      config::ConnectionConfig c;
      c.name = name;
      config_.connections.push_back(c);
    }
    auto registry = identity::RevocationRegistry::open("");
    ASSERT_TRUE(registry.has_value());
    revocations_ = std::move(*registry);
    auto api = AdminApi::create(ApiDependencies{.config = &config_,
                                                .validator = validator_.get(),
                                                .minter = minter_.get(),
                                                .revocations = revocations_.get(),
                                                .audit = &audit_,
                                                .clock_s = [] { return kNow; }});
    ASSERT_TRUE(api.has_value()) << api.error().message;
    api_ = std::move(*api);
  }

  Response call(std::string method, std::string path, std::string content_type = {},
                std::string body = {}, std::string bearer = {}) {
    Request r;
    r.method = std::move(method);
    r.path = std::move(path);
    if (!content_type.empty()) r.headers.emplace_back("Content-Type", content_type);
    if (!bearer.empty()) r.headers.emplace_back("authorization", "Bearer " + bearer);
    r.body = std::move(body);
    r.remote_address = "127.0.0.1:40000";
    return api_->router().dispatch(std::move(r));
  }

  static nlohmann::json body_of(const Response& r) {
    return nlohmann::json::parse(r.body, nullptr, false);
  }
  static std::string header_of(const Response& r, std::string_view name) {
    for (const auto& [key, value] : r.headers) {
      if (key == name) return value;
    }
    return {};
  }

  Response revoke(const std::string& kind, const std::string& value, const std::string& bearer) {
    const nlohmann::json body = {{"kind", kind}, {"value", value}, {"reason", "offboarded"}};
    return call("POST", "/admin/revocations", "application/json", body.dump(), bearer);
  }

  config::Config config_;
  std::unique_ptr<identity::RevocationRegistry> revocations_;
  MemoryAuditSink audit_;
  std::unique_ptr<AdminApi> api_;
};

TEST_F(AdminApiTest, TokenExchangeAnswersAndRecordsTheGrant) {
  const std::string alice = own_token("alice", {"deployers"});
  Params f = form(alice);
  f.emplace_back("actor", "deploy-svc");
  const Response r = call("POST", "/oauth/token",
                          "application/x-www-form-urlencoded; charset=UTF-8", form_encode(f));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(header_of(r, "Cache-Control"), "no-store");  // RFC 6749 §5.1
  const nlohmann::json body = body_of(r);
  ASSERT_TRUE(body["access_token"].is_string());
  auto child = validator_->validate(body["access_token"].get<std::string>(), kNow);
  ASSERT_TRUE(child.has_value());
  EXPECT_EQ(child->chain_string(), "alice \u2192 deploy-svc");

  const auto entries = audit_.entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].action, "token_exchange");
  EXPECT_EQ(entries[0].outcome, "granted");
  EXPECT_EQ(entries[0].http_status, 200);
  EXPECT_EQ(entries[0].chain, (std::vector<std::string>{"alice", "deploy-svc"}));
  EXPECT_EQ(entries[0].client_address, "127.0.0.1:40000");
  bool has_issued_jti = false;
  for (const auto& [name, value] : entries[0].details) {
    has_issued_jti |= name == "issued_jti" && value == child->token_id;
  }
  EXPECT_TRUE(has_issued_jti);
}

TEST_F(AdminApiTest, EveryViolationIsA400WithAnOAuthErrorBodyAndIsRecorded) {
  const std::string alice = own_token("alice", {"deployers"});
  struct Case {
    std::string body;
    std::string content_type;
    std::string error;
  };
  Params widen = form(alice);
  widen.emplace_back("scope", "admins");
  Params longer = form(alice);
  longer.emplace_back("ttl", "1h");
  const std::vector<Case> cases = {
      {form_encode(widen), "application/x-www-form-urlencoded", "invalid_scope"},
      {form_encode(longer), "application/x-www-form-urlencoded", "invalid_request"},
      {"grant_type=password", "application/x-www-form-urlencoded", "unsupported_grant_type"},
      {"subject_token=%zz", "application/x-www-form-urlencoded", "invalid_request"},
      {R"({"grant_type":"x"})", "application/json", "invalid_request"},
  };
  for (const Case& c : cases) {
    const Response r = call("POST", "/oauth/token", c.content_type, c.body);
    EXPECT_EQ(r.status, 400) << c.body;
    const nlohmann::json body = body_of(r);
    EXPECT_EQ(body["error"], c.error) << r.body;
    EXPECT_TRUE(body["error_description"].is_string()) << r.body;
    EXPECT_EQ(header_of(r, "Cache-Control"), "no-store");
  }
  const auto entries = audit_.entries();
  ASSERT_EQ(entries.size(), cases.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].outcome, "refused");
    EXPECT_EQ(entries[i].http_status, 400);
    EXPECT_EQ(entries[i].reason.rfind(cases[i].error + ": ", 0), 0u) << entries[i].reason;
  }
  // The refusal of a widened scope is attributed to alice's chain.
  EXPECT_EQ(entries[0].chain, std::vector<std::string>{"alice"});
}

TEST_F(AdminApiTest, RevocationNeedsAnAdminAndTakesEffectAtOnce) {
  const std::string admin = own_token("root", {"gh-admins"});
  const std::string alice = own_token("alice", {"deployers"});
  const auto alice_id = validator_->validate(alice, kNow)->token_id;

  Response r = call("POST", "/admin/revocations", "application/json", "{}");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(header_of(r, "WWW-Authenticate"), "Bearer realm=\"gatehouse\"");  // RFC 6750 §3.1
  r = revoke("jti", alice_id, "garbage");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(body_of(r)["error"], "invalid_token");
  r = revoke("jti", alice_id, alice);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(body_of(r)["error"], "insufficient_scope");
  EXPECT_EQ(revocations_->epoch().load(), 0u);

  r = revoke("jti", alice_id, admin);
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(revocations_->epoch().load(), 1u);
  EXPECT_NE(revocations_->current()->find(*validator_->validate(alice, kNow)), nullptr);
  r = revoke("jti", alice_id, admin);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body_of(r)["already_revoked"], true);
  EXPECT_EQ(revocations_->epoch().load(), 1u);
  r = revoke("token", "x", admin);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body_of(r)["error"], "invalid_request");

  // The revoked token can no longer be exchanged.
  r = call("POST", "/oauth/token", "application/x-www-form-urlencoded", form_encode(form(alice)));
  EXPECT_EQ(r.status, 400);

  r = call("GET", "/admin/revocations", "", "", admin);
  ASSERT_EQ(r.status, 200);
  const nlohmann::json list = body_of(r)["revocations"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["kind"], "jti");
  EXPECT_EQ(list[0]["value"], alice_id);
  EXPECT_EQ(list[0]["revoked_by"], "root");
  EXPECT_EQ(list[0]["reason"], "offboarded");

  // An admin revoked as an actor is refused from then on.
  ASSERT_EQ(revoke("subject", "root", admin).status, 201);
  r = call("GET", "/admin/revocations", "", "", admin);
  EXPECT_EQ(r.status, 401);

  size_t refused = 0, granted = 0;
  for (const AuditEntry& e : audit_.entries()) {
    refused += e.outcome == "refused";
    granted += e.outcome == "granted";
  }
  EXPECT_EQ(granted, 3u);  // two revocations and the already-revoked answer
  EXPECT_GE(refused, 6u);
}

TEST_F(AdminApiTest, UnknownRoutesAndMethods) {
  Response r = call("GET", "/nowhere");
  EXPECT_EQ(r.status, 404);
  r = call("GET", "/oauth/token");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(header_of(r, "Allow"), "POST");
  r = call("GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  r = call("GET", "/.well-known/jwks.json");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body_of(r), minter_->public_jwks());
}

// Later features (approvals) add routes of their own with path parameters.
TEST_F(AdminApiTest, RoutesWithPathParameters) {
  Router& router = api_->router();
  ASSERT_TRUE(router
                  .add("POST", "/admin/reviews/{id}/approve", Access::kAuthenticated,
                       [](const Request& r, const Caller* caller) {
                         return json_response(200, {{"id", r.path_params.at("id")},
                                                    {"by", caller->identity.subject},
                                                    {"admin", caller->admin}});
                       })
                  .has_value());
  EXPECT_FALSE(router.add("POST", "/admin/reviews/{id}/approve", Access::kPublic, nullptr));
  EXPECT_FALSE(router.add("GET", "/a/{b", Access::kPublic, nullptr));
  EXPECT_FALSE(router.add("GET", "relative", Access::kPublic, nullptr));
  Response r = call("POST", "/admin/reviews/r-17/approve", "", "", own_token("bob", {"dba"}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r), (nlohmann::json{{"id", "r-17"}, {"by", "bob"}, {"admin", false}}));
  EXPECT_EQ(call("POST", "/admin/reviews//approve").status, 404);
  EXPECT_EQ(call("POST", "/admin/reviews/r-17/approve").status, 401);
}

TEST(AdminHttp, FormBodiesRoundTripAndRefuseBadEscapes) {
  const Params params = {{"a b", "x+y&z=1"}, {"empty", ""}, {"utf8", "\xc3\xa9"}};
  const auto parsed = parse_form(form_encode(params));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, params);
  EXPECT_EQ(*parse_form("a=1&&b=%41+"), (Params{{"a", "1"}, {"b", "A "}}));
  EXPECT_EQ(*parse_form("flag"), (Params{{"flag", ""}}));
  EXPECT_FALSE(parse_form("a=%4").has_value());
  EXPECT_FALSE(parse_form("a=%g1").has_value());
}

// Any bytes at all: a body either parses to pairs that encode back to the same pairs, or is refused;
// a split anywhere in a valid body never yields something that fails to round-trip.
TEST(AdminHttp, FormParsingOfArbitraryBytesRoundTrips) {
  uint64_t state = 0x9e3779b97f4a7c15ull;
  const auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  const std::string alphabet = std::string("ab=&%+ 0F\xff\n") + '\0';
  size_t parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string body(next() % 24, '\0');
    for (char& c : body) c = (next() % 4 == 0) ? char(next()) : alphabet[next() % alphabet.size()];
    const auto form = parse_form(body);
    if (!form) continue;
    ++parsed;
    const auto again = parse_form(form_encode(*form));
    ASSERT_TRUE(again.has_value()) << body;
    EXPECT_EQ(*again, *form) << body;
  }
  EXPECT_GT(parsed, 1000u);  // the generator reaches the accepting paths, not only refusals
  const std::string valid = "grant_type=urn%3Aietf&scope=a+b&audience=db&audience=x%20y";
  for (size_t cut = 0; cut <= valid.size(); ++cut) {
    const auto head = parse_form(valid.substr(0, cut));
    if (head) {
      const auto again = parse_form(form_encode(*head));
      ASSERT_TRUE(again.has_value());
      EXPECT_EQ(*again, *head);
    } else {
      // Only a cut inside a %-escape is refused.
      const size_t percent = valid.rfind('%', cut == 0 ? 0 : cut - 1);
      EXPECT_TRUE(percent != std::string::npos && cut - percent < 3) << cut;
    }
  }
}

TEST(AdminHttp, BearerTokens) {
  Request r;
  EXPECT_FALSE(bearer_token(r).has_value());
  r.headers = {{"AUTHORIZATION", "bearer abc.def"}};
  EXPECT_EQ(bearer_token(r), "abc.def");
  r.headers = {{"Authorization", "Basic abc"}};
  EXPECT_FALSE(bearer_token(r).has_value());
  r.headers = {{"Authorization", "Bearer "}};
  EXPECT_FALSE(bearer_token(r).has_value());
}

// The review routes as an approver's CLI sees them: who sees and decides which review, what an
// approval must name, and the audit entry of each decision.
class ReviewApiTest : public AdminApiTest {
 protected:
  void SetUp() override {
    AdminApiTest::SetUp();
    ASSERT_TRUE(add_review_routes(*api_, store_).has_value());
  }
  review::Ticket hold(std::string statement) {
    review::Request r;
    r.connection = "db-prod";
    r.rule = "schema-changes";
    r.statement = std::move(statement);
    r.kind = "query";
    r.requester_chain = {"alice", "ci-runner"};
    r.approver_groups = {"dba"};
    r.timeout_s = 60;
    auto t = store_.submit(std::move(r));
    EXPECT_TRUE(t.has_value());
    return *t;
  }
  Response decide(const std::string& id, const std::string& verb, const nlohmann::json& body,
                  const std::string& bearer) {
    return call("POST", "/admin/reviews/" + id + "/" + verb, "application/json", body.dump(),
                bearer);
  }

  review::ReviewStore store_{[] { return kNow; }};
};

TEST_F(ReviewApiTest, ApproversSeeTheStatementAndApproveItByItsHash) {
  const review::Ticket t = hold("ALTER TABLE accounts ADD COLUMN note text");
  const std::string bob = own_token("bob", {"dba"});
  Response listed = call("GET", "/admin/reviews", "", "", bob);
  ASSERT_EQ(listed.status, 200) << listed.body;
  ASSERT_EQ(body_of(listed)["reviews"].size(), 1u);
  const nlohmann::json shown = body_of(listed)["reviews"][0];
  EXPECT_EQ(shown["id"], t.id);
  EXPECT_EQ(shown["statement"], "ALTER TABLE accounts ADD COLUMN note text");
  EXPECT_EQ(shown["sha256"], t.sha256);
  EXPECT_EQ(shown["requester"], "alice \u2192 ci-runner");
  EXPECT_EQ(shown["state"], "pending");
  EXPECT_EQ(body_of(call("GET", "/admin/reviews/" + t.id, "", "", bob))["sha256"], t.sha256);

  // Not in an approver group (and not an admin): the review does not exist for them.
  const std::string dev = own_token("dave", {"devs"});
  EXPECT_TRUE(body_of(call("GET", "/admin/reviews", "", "", dev))["reviews"].empty());
  EXPECT_EQ(call("GET", "/admin/reviews/" + t.id, "", "", dev).status, 404);
  EXPECT_EQ(decide(t.id, "approve", {{"sha256", t.sha256}}, dev).status, 404);
  EXPECT_EQ(call("GET", "/admin/reviews").status, 401);
  // Admins see every review, but decide only when in an approver group.
  const std::string root = own_token("root", {"gh-admins"});
  EXPECT_EQ(body_of(call("GET", "/admin/reviews", "", "", root))["reviews"].size(), 1u);
  EXPECT_EQ(decide(t.id, "approve", {{"sha256", t.sha256}}, root).status, 403);

  // The hash of another statement, or none, is refused.
  Response wrong = decide(t.id, "approve",
                          {{"sha256", review::statement_sha256("ALTER TABLE accounts DROP note")}}, bob);
  EXPECT_EQ(wrong.status, 409);
  EXPECT_EQ(body_of(wrong)["error"], "statement_mismatch");
  EXPECT_EQ(decide(t.id, "approve", nlohmann::json::object(), bob).status, 409);
  EXPECT_EQ(call("POST", "/admin/reviews/" + t.id + "/approve", "text/plain", "x", bob).status, 400);
  EXPECT_EQ(t.state(), review::State::kPending);

  Response ok = decide(t.id, "approve", {{"sha256", t.sha256}}, bob);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(body_of(ok)["state"], "approved");
  EXPECT_EQ(body_of(ok)["decided_by"], "bob");
  EXPECT_EQ(t.state(), review::State::kApproved);
  EXPECT_EQ(decide(t.id, "deny", {{"reason", "late"}}, bob).status, 409);

  bool recorded = false;
  for (const AuditEntry& e : audit_.entries()) {
    if (e.action != "review_approve" || e.outcome != "granted") continue;
    recorded = true;
    EXPECT_EQ(e.chain, std::vector<std::string>{"bob"});
    EXPECT_NE(std::find(e.details.begin(), e.details.end(),
                        std::pair<std::string, std::string>{"review_id", t.id}),
              e.details.end());
  }
  EXPECT_TRUE(recorded);
}

TEST_F(ReviewApiTest, TheRequesterAndItsChainCannotDecideAndDenialsNeedAReason) {
  const review::Ticket t = hold("DROP TABLE audit_log");
  for (const auto& [who, actors] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"alice", {}}, {"ci-runner", {}}, {"bob", {"ci-runner"}}}) {
    const std::string token = own_token(who, {"dba"}, 600, actors);
    Response r = decide(t.id, "approve", {{"sha256", t.sha256}}, token);
    EXPECT_EQ(r.status, 403) << who;
    EXPECT_EQ(body_of(r)["error"], "requester_chain") << who;
    EXPECT_EQ(decide(t.id, "deny", {{"reason", "mine"}}, token).status, 403) << who;
  }
  const std::string carol = own_token("carol", {"dba"});
  EXPECT_EQ(decide(t.id, "deny", nlohmann::json::object(), carol).status, 400);
  Response denied = decide(t.id, "deny", {{"reason", "use a migration"}}, carol);
  ASSERT_EQ(denied.status, 200) << denied.body;
  EXPECT_EQ(body_of(denied)["deny_reason"], "use a migration");
  EXPECT_EQ(t.state(), review::State::kDenied);
  EXPECT_EQ(t.cell->deny_reason, "use a migration");
  EXPECT_EQ(decide("r-0000", "deny", {{"reason", "x"}}, carol).status, 404);
}

}  // namespace
}  // namespace gh::admin
