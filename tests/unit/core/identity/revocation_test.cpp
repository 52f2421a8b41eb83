// Revocations: what each kind covers, the file that keeps them across restarts, and the epoch
// that tells shards to look again. File I/O in a temporary directory only.
#include "core/identity/revocation.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "tests/unit/core/identity/test_keys.hpp"

namespace gh::identity {
namespace {

Identity chain_identity() {
  Identity id;
  id.subject = "alice";
  id.actors = {"ci-runner", "deploy-svc"};
  id.token_id = "child-jti";
  id.lineage = {"root-jti", "runner-jti"};
  return id;
}

Revocation revocation(RevocationKind kind, std::string value) {
  return Revocation{kind, std::move(value), 1'700'000'000, "root", "offboarded"};
}

TEST(RevocationSetTest, EachKindCoversWhatItNames) {
  const Identity id = chain_identity();
  EXPECT_EQ(RevocationSet().find(id), nullptr);
  for (const auto& [kind, value] : std::vector<std::pair<RevocationKind, std::string>>{
           {RevocationKind::kTokenId, "child-jti"},
           {RevocationKind::kTokenId, "root-jti"},  // an ancestor: everything minted from it
           {RevocationKind::kTokenId, "runner-jti"},
           {RevocationKind::kSubject, "alice"},
           {RevocationKind::kActor, "alice"},  // an actor anywhere in the chain, subject included
           {RevocationKind::kActor, "ci-runner"},
           {RevocationKind::kActor, "deploy-svc"}}) {
    const RevocationSet set({revocation(kind, value)});
    const Revocation* found = set.find(id);
    ASSERT_NE(found, nullptr) << revocation_kind_name(kind) << " " << value;
    EXPECT_EQ(found->value, value);
  }
  for (const auto& [kind, value] : std::vector<std::pair<RevocationKind, std::string>>{
           {RevocationKind::kTokenId, "other"},
           {RevocationKind::kSubject, "ci-runner"},  // a subject revocation is about "sub" only
           {RevocationKind::kActor, "bob"}}) {
    EXPECT_EQ(RevocationSet({revocation(kind, value)}).find(id), nullptr) << value;
  }
  // A token without jti is not covered by an empty value.
  Identity no_jti = id;
  no_jti.token_id.clear();
  no_jti.lineage.clear();
  EXPECT_EQ(RevocationSet({revocation(RevocationKind::kTokenId, "child-jti")}).find(no_jti),
            nullptr);
}

TEST(RevocationSetTest, DescribeNamesWhatWhenAndWhy) {
  EXPECT_EQ(describe(revocation(RevocationKind::kActor, "ci-runner")),
            "actor \"ci-runner\" was revoked at 1700000000 by \"root\": \"offboarded\"");
}

TEST(RevocationRegistryTest, PersistsPublishesAndReloads) {
  testing::TempDir dir;
  const auto file = dir.path() / "revocations.jsonl";
  {
    auto registry = RevocationRegistry::open(file);
    ASSERT_TRUE(registry.has_value()) << registry.error().message;
    RevocationView view(registry->get());
    EXPECT_TRUE(view.get().entries().empty());
    EXPECT_EQ((*registry)->epoch().load(), 0u);
    auto added = (*registry)->add(revocation(RevocationKind::kTokenId, "root-jti"));
    ASSERT_TRUE(added.has_value()) << added.error().message;
    EXPECT_TRUE(*added);
    EXPECT_EQ((*registry)->epoch().load(), 1u);
    // The shard's view sees it as soon as the epoch moved.
    EXPECT_NE(view.get().find(chain_identity()), nullptr);
    EXPECT_EQ(view.seen_epoch(), 1u);
    // The same revocation twice changes nothing.
    added = (*registry)->add(revocation(RevocationKind::kTokenId, "root-jti"));
    ASSERT_TRUE(added.has_value());
    EXPECT_FALSE(*added);
    EXPECT_EQ((*registry)->epoch().load(), 1u);
    ASSERT_TRUE((*registry)->add(revocation(RevocationKind::kActor, "ci-runner")).has_value());
    EXPECT_FALSE((*registry)->add(revocation(RevocationKind::kActor, "")).has_value());
    EXPECT_FALSE(
        (*registry)->add(revocation(RevocationKind::kActor, std::string(2000, 'x'))).has_value());
  }
  // A restart keeps every confirmed revocation; a view of a freshly opened registry sees them.
  auto reopened = RevocationRegistry::open(file);
  ASSERT_TRUE(reopened.has_value()) << reopened.error().message;
  RevocationView view(reopened->get());
  ASSERT_EQ(view.get().entries().size(), 2u);
  EXPECT_EQ(view.get().entries()[1].value, "ci-runner");
  EXPECT_EQ(view.get().entries()[1].reason, "offboarded");
}

TEST(RevocationRegistryTest, ATornLastLineIsCutAndAppendsGoOn) {
  testing::TempDir dir;
  const auto file = dir.write(
      "revocations.jsonl",
      revocation_to_json_line(revocation(RevocationKind::kSubject, "mallory")) + "{\"kind\":\"ac");
  auto registry = RevocationRegistry::open(file);
  ASSERT_TRUE(registry.has_value()) << registry.error().message;
  EXPECT_EQ((*registry)->current()->entries().size(), 1u);
  ASSERT_TRUE((*registry)->add(revocation(RevocationKind::kActor, "eve")).has_value());
  auto reopened = RevocationRegistry::open(file);
  ASSERT_TRUE(reopened.has_value()) << reopened.error().message;
  EXPECT_EQ((*reopened)->current()->entries().size(), 2u);
}

TEST(RevocationRegistryTest, ACorruptLineFailsWithFileAndLine) {
  testing::TempDir dir;
  const auto file = dir.write("revocations.jsonl",
                              revocation_to_json_line(revocation(RevocationKind::kSubject, "a")) +
                                  "{\"kind\":\"everyone\",\"value\":\"x\",\"revoked_at\":1}\n");
  auto registry = RevocationRegistry::open(file);
  ASSERT_FALSE(registry.has_value());
  EXPECT_NE(registry.error().message.find("line 2"), std::string::npos) << registry.error().message;
}

TEST(RevocationRegistryTest, ReadersOnOtherThreadsSeeEveryPublishedSet) {
  auto registry = RevocationRegistry::open("");
  ASSERT_TRUE(registry.has_value());
  RevocationRegistry& r = **registry;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    RevocationView view(&r);
    size_t last = 0;
    while (!done.load()) {
      const size_t now = view.get().entries().size();
      EXPECT_GE(now, last);  // a set once seen never shrinks
      last = now;
    }
    EXPECT_EQ(view.get().entries().size(), 200u);
  });
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(
        r.add(revocation(RevocationKind::kTokenId, "jti-" + std::to_string(i))).has_value());
  }
  done.store(true);
  reader.join();
  EXPECT_EQ(r.epoch().load(), 200u);
}

}  // namespace
}  // namespace gh::identity
