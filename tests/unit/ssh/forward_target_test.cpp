// The direct-tcpip allow-list: what a connection's forwarding.local_targets lets through.
#include <gtest/gtest.h>

#include "protocols/ssh/codec/forward_target.hpp"

namespace gh::ssh {
namespace {

TEST(ForwardTarget, EmptyListAllowsEveryTarget) {
  EXPECT_TRUE(target_allowed({}, "db.internal", 5432));
  EXPECT_TRUE(target_allowed({}, "::1", 22));
}

TEST(ForwardTarget, OnlyListedHostAndPortPass) {
  const std::vector<std::string> allowed = {"db.internal:5432", "127.0.0.1:8080", "[::1]:22"};
  EXPECT_TRUE(target_allowed(allowed, "db.internal", 5432));
  EXPECT_TRUE(target_allowed(allowed, "DB.Internal", 5432));  // DNS names have no case
  EXPECT_TRUE(target_allowed(allowed, "127.0.0.1", 8080));
  EXPECT_TRUE(target_allowed(allowed, "::1", 22));
  EXPECT_FALSE(target_allowed(allowed, "db.internal", 5433));   // same host, other port
  EXPECT_FALSE(target_allowed(allowed, "db.internal.", 5432));  // not the name listed
  EXPECT_FALSE(target_allowed(allowed, "127.0.0.1", 80));
  EXPECT_FALSE(target_allowed(allowed, "127.0.0.10", 8080));
  EXPECT_FALSE(target_allowed(allowed, "", 5432));
  EXPECT_FALSE(target_allowed(allowed, "::1", 2));
}

TEST(ForwardTarget, TextBracketsIpv6Literals) {
  EXPECT_EQ(target_text("127.0.0.1", 8080), "127.0.0.1:8080");
  EXPECT_EQ(target_text("::1", 22), "[::1]:22");
  EXPECT_EQ(target_text("", 0), ":0");
}

}  // namespace
}  // namespace gh::ssh
