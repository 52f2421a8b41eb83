// The review store's decision rules, as an approver and a holding shard rely on them: who may
// decide, how many approvals it takes, what an approval is bound to, and time-outs.
#include "core/review.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace gh::review {
namespace {

identity::Identity person(std::string subject, std::vector<std::string> groups,
                          std::vector<std::string> actors = {}) {
  identity::Identity id;
  id.subject = std::move(subject);
  id.groups = std::move(groups);
  id.actors = std::move(actors);
  return id;
}

class ReviewStoreTest : public ::testing::Test {
 protected:
  Request request(std::string statement = "ALTER TABLE t ADD COLUMN c int",
                  uint32_t approvals_min = 1) {
    Request r;
    r.connection = "appdb";
    r.rule = "schema-changes";
    r.statement = std::move(statement);
    r.kind = "query";
    // alice's CI runner, acting through a deploy agent.
    r.requester_chain = {"alice", "ci-runner", "deploy-agent"};
    r.approver_groups = {"dba", "sre"};
    r.approvals_min = approvals_min;
    r.timeout_s = 60;
    return r;
  }
  Ticket submit(Request r) {
    auto t = store_.submit(std::move(r));
    EXPECT_TRUE(t.has_value());
    return *t;
  }

  int64_t now_ = 1'700'000'000;
  std::vector<Review> submitted_;
  ReviewStore store_{[this] { return now_; }, [this](const Review& r) { submitted_.push_back(r); }};
};

TEST_F(ReviewStoreTest, AnApproverInAGroupApprovesTheHeldStatementByItsHash) {
  const Ticket t = submit(request());
  EXPECT_EQ(t.sha256, statement_sha256("ALTER TABLE t ADD COLUMN c int"));
  EXPECT_EQ(t.sha256.size(), 64u);
  ASSERT_EQ(submitted_.size(), 1u);
  EXPECT_EQ(submitted_[0].id, t.id);
  EXPECT_EQ(t.state(), State::kPending);
  const uint64_t epoch = store_.epoch().load();

  auto r = store_.approve(t.id, person("bob", {"dba"}), t.sha256);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->state, State::kApproved);
  EXPECT_EQ(t.state(), State::kApproved);
  EXPECT_EQ(t.cell->approvers, std::vector<std::string>{"bob"});
  EXPECT_NE(store_.epoch().load(), epoch);  // shards look again
  // Decided once: a second decision is refused.
  auto again = store_.deny(t.id, person("carol", {"sre"}), "too late");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().why, Refusal::kNotPending);
  EXPECT_EQ(store_.find(t.id)->state, State::kApproved);
}

TEST_F(ReviewStoreTest, AnApprovalForAnotherStatementIsRefused) {
  const Ticket held = submit(request("DELETE FROM accounts WHERE id = 2"));
  const std::string seen = statement_sha256("DELETE FROM accounts WHERE id = 1");
  auto r = store_.approve(held.id, person("bob", {"dba"}), seen);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().why, Refusal::kHashMismatch);
  EXPECT_NE(r.error().message.find(held.sha256), std::string::npos);
  r = store_.approve(held.id, person("bob", {"dba"}), "");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().why, Refusal::kHashMismatch);
  EXPECT_EQ(held.state(), State::kPending);
  // Hashes are of the exact bytes: one space more is another statement.
  EXPECT_NE(statement_sha256("DELETE FROM accounts WHERE id = 2"),
            statement_sha256("DELETE FROM accounts WHERE id =  2"));
}

TEST_F(ReviewStoreTest, ApproversOutsideTheGroupsOrInTheRequesterChainAreRefused) {
  const Ticket t = submit(request());
  struct Case {
    const char* what;
    identity::Identity who;
    Refusal why;
  };
  const std::vector<Case> cases = {
      {"no approver group", person("mallory", {"devs"}), Refusal::kNotApprover},
      {"no groups at all", person("mallory", {}), Refusal::kNotApprover},
      {"the requester itself", person("alice", {"dba"}), Refusal::kRequesterChain},
      {"an agent of the chain", person("ci-runner", {"dba"}), Refusal::kRequesterChain},
      {"the acting agent", person("deploy-agent", {"sre"}), Refusal::kRequesterChain},
      {"a dba carried by the chain's agent", person("bob", {"dba"}, {"deploy-agent"}),
       Refusal::kRequesterChain},
      {"the requester acting through another agent", person("alice", {"dba"}, {"other-bot"}),
       Refusal::kRequesterChain},
  };
  for (const Case& c : cases) {
    auto a = store_.approve(t.id, c.who, t.sha256);
    ASSERT_FALSE(a.has_value()) << c.what;
    EXPECT_EQ(a.error().why, c.why) << c.what << ": " << a.error().message;
    auto d = store_.deny(t.id, c.who, "no");
    ASSERT_FALSE(d.has_value()) << c.what;
    EXPECT_EQ(d.error().why, c.why) << c.what;
  }
  EXPECT_EQ(t.state(), State::kPending);
  EXPECT_TRUE(store_.find(t.id)->approvals.empty());
  // Someone outside the chain, acting through an agent outside it too, may.
  auto ok = store_.approve(t.id, person("bob", {"sre"}, {"review-bot"}), t.sha256);
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->decided_by, "bob \u2192 review-bot");
}

TEST_F(ReviewStoreTest, MinimumApprovalsCountDistinctSubjects) {
  const Ticket t = submit(request("DROP INDEX i", 2));
  auto first = store_.approve(t.id, person("bob", {"dba"}), t.sha256);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->state, State::kPending);
  EXPECT_EQ(t.state(), State::kPending);
  // bob again, even through another agent, does not count twice.
  auto twice = store_.approve(t.id, person("bob", {"dba"}, {"review-bot"}), t.sha256);
  ASSERT_FALSE(twice.has_value());
  EXPECT_EQ(twice.error().why, Refusal::kAlreadyApproved);
  auto second = store_.approve(t.id, person("carol", {"sre"}), t.sha256);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->state, State::kApproved);
  EXPECT_EQ(t.cell->approvers, (std::vector<std::string>{"bob", "carol"}));
}

TEST_F(ReviewStoreTest, DenialNeedsAReasonAndReachesTheShard) {
  const Ticket t = submit(request());
  auto none = store_.deny(t.id, person("bob", {"dba"}), "");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().why, Refusal::kNoReason);
  auto d = store_.deny(t.id, person("bob", {"dba"}), "not during the freeze");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(t.state(), State::kDenied);
  EXPECT_EQ(t.cell->denied_by, "bob");
  EXPECT_EQ(t.cell->deny_reason, "not during the freeze");
  EXPECT_EQ(store_.find(t.id)->deny_reason, "not during the freeze");
}

TEST_F(ReviewStoreTest, AReviewPastItsTimeCannotBeApproved) {
  const Ticket t = submit(request());
  now_ += 59;
  EXPECT_EQ(store_.find(t.id)->state, State::kPending);
  now_ += 1;
  auto late = store_.approve(t.id, person("bob", {"dba"}), t.sha256);
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error().why, Refusal::kNotPending);
  EXPECT_EQ(t.state(), State::kExpired);  // the shard refuses the statement
}

TEST_F(ReviewStoreTest, TheShardSettlingFirstWinsOverALateApproval) {
  const Ticket t = submit(request());
  EXPECT_TRUE(t.settle(State::kExpired));
  EXPECT_FALSE(t.settle(State::kCancelled));  // final once moved
  auto late = store_.approve(t.id, person("bob", {"dba"}), t.sha256);
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error().why, Refusal::kNotPending);
  EXPECT_EQ(store_.find(t.id)->state, State::kExpired);

  const Ticket gone = submit(request());
  EXPECT_TRUE(gone.settle(State::kCancelled));  // the client disconnected
  EXPECT_EQ(store_.find(gone.id)->state, State::kCancelled);
  EXPECT_FALSE(store_.approve("r-nonexistent", person("bob", {"dba"}), t.sha256).has_value());
  // Too large to review: refused at once rather than held.
  const auto huge = store_.submit(request(std::string(ReviewStore::kStatementBytesMax + 1, 'x')));
  ASSERT_FALSE(huge.has_value());
  EXPECT_NE(huge.error().message.find("larger than"), std::string::npos);
}

// Approvals racing with the shard's time-out: exactly one side decides, and the shard sees
// what the store reports.
TEST_F(ReviewStoreTest, ConcurrentApprovalAndTimeOutDecideOnce) {
  for (int i = 0; i < 200; ++i) {
    const Ticket t = submit(request());
    std::thread shard([&] { t.settle(State::kExpired); });
    auto a = store_.approve(t.id, person("bob", {"dba"}), t.sha256);
    shard.join();
    const State final_state = t.state();
    EXPECT_EQ(a.has_value(), final_state == State::kApproved);
    EXPECT_EQ(store_.find(t.id)->state, final_state);
  }
}

TEST_F(ReviewStoreTest, ListingIsNewestFirstAndDecidedReviewsAreBounded) {
  std::vector<Ticket> tickets;
  for (size_t i = 0; i < ReviewStore::kDecidedKeptMax + 10; ++i) {
    tickets.push_back(submit(request("ALTER TABLE t" + std::to_string(i) + " ADD c int")));
    tickets.back().settle(State::kCancelled);
  }
  const Ticket pending = submit(request());
  const auto all = store_.list();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.front().id, pending.id);
  EXPECT_LE(all.size(), ReviewStore::kDecidedKeptMax + 1);
  EXPECT_FALSE(store_.find(tickets.front().id).has_value());  // the oldest decided went first
  EXPECT_TRUE(store_.find(tickets.back().id).has_value());
}

}  // namespace
}  // namespace gh::review
