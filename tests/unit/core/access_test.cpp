// Connection access for validated callers: groups, a token's narrowing to connections, CI
// provenance rules; nothing inside a nested actor grants anything.
#include "core/access.hpp"

#include <gtest/gtest.h>

namespace gh::access {
namespace {

config::ConnectionConfig db_prod() {
  config::ConnectionConfig c;
  c.name = "db-prod";
  c.allow_groups = {"deployers"};
  c.require_claims = {{"repository_id", {"892341"}}, {"ref", {"refs/heads/main", "refs/tags/v1"}}};
  return c;
}

identity::Identity deployer() {
  identity::Identity id;
  id.subject = "repo:acme/app";
  id.groups = {"deployers"};
  id.provenance = {{"repository_id", "892341"}, {"ref", "refs/heads/main"}};
  return id;
}

TEST(Access, AllRulesHold) { EXPECT_EQ(refusal(db_prod(), deployer()), std::nullopt); }

TEST(Access, GroupsComeFromTheTopLevelOnly) {
  identity::Identity id = deployer();
  id.groups = {"interns"};
  // Whatever a nested actor's object said, the Validator kept only top-level groups; the actors
  // themselves are names and grant nothing.
  id.actors = {"deployers", "ci-runner"};
  const auto why = refusal(db_prod(), id);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("groups of 'repo:acme/app' not allowed"), std::string::npos) << *why;
}

TEST(Access, NarrowedTokensReachOnlyTheirConnections) {
  identity::Identity id = deployer();
  id.connections = std::vector<std::string>{"db-staging"};
  ASSERT_TRUE(refusal(db_prod(), id).has_value());
  EXPECT_NE(refusal(db_prod(), id)->find("narrowed to other connections"), std::string::npos);
  id.connections = std::vector<std::string>{"db-staging", "db-prod"};
  EXPECT_EQ(refusal(db_prod(), id), std::nullopt);
}

TEST(Access, ProvenanceRules) {
  identity::Identity id = deployer();
  id.provenance = {{"repository_id", "892341"}, {"ref", "refs/heads/feature"}};
  auto why = refusal(db_prod(), id);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("provenance claim \"ref\" is \"refs/heads/feature\""), std::string::npos)
      << *why;
  id.provenance = {{"ref", "refs/tags/v1"}};
  why = refusal(db_prod(), id);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("requires provenance claim \"repository_id\""), std::string::npos) << *why;
  id.provenance = {{"ref", "refs/tags/v1"}, {"repository_id", "892341"}};
  EXPECT_EQ(refusal(db_prod(), id), std::nullopt);
}

}  // namespace
}  // namespace gh::access
