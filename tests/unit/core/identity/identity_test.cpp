// Identity: the delegation chain helpers.
// Pure value tests.
#include "core/identity/identity.hpp"

#include <gtest/gtest.h>

namespace gh::identity {
namespace {

TEST(IdentityTest, ChainWithoutActors) {
  Identity id;
  id.subject = "alice";
  EXPECT_EQ(id.chain(), std::vector<std::string>{"alice"});
  EXPECT_EQ(id.chain_string(), "alice");
}

TEST(IdentityTest, ChainEarliestFirst) {
  Identity id;
  id.subject = "alice";
  id.actors = {"ci-runner", "deploy-svc"};
  EXPECT_EQ(id.chain(), (std::vector<std::string>{"alice", "ci-runner", "deploy-svc"}));
  EXPECT_EQ(id.chain_string(), "alice \xE2\x86\x92 ci-runner \xE2\x86\x92 deploy-svc");
}

}  // namespace
}  // namespace gh::identity
