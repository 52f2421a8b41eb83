// Session summaries, session loading and the CLI renderings (table, replay, JSON, verify).
// Trails are written through a real flusher into a temporary directory.
#include <gtest/gtest.h>

#include "record/flusher.hpp"
#include "record/format.hpp"
#include "record/reader.hpp"
#include "record_test_support.hpp"

namespace gh::rec {
namespace {

using testing::kBaseTimeNs;

constexpr uint64_t kAliceSession = 0x00000000000000a1ull;
constexpr uint64_t kBobSession = 0x1b0b000000000002ull;
constexpr uint64_t kRejected = 0x00000000000000f0ull;

std::vector<StoredEvent> alice_session() {
  const uint64_t s = kAliceSession;
  const uint64_t t = kBaseTimeNs;
  return {
      {EventType::kSessionStart,
       s,
       0,
       t,
       {{FieldTag::kProtocol, "postgres"},
        {FieldTag::kConnection, "prod-db"},
        {FieldTag::kClientAddress, "10.0.0.5:51234"},
        {FieldTag::kChainMember, "alice"},
        {FieldTag::kChainMember, "ci-runner"},
        {FieldTag::kGroup, "dba"},
        {FieldTag::kGroup, "ci"},
        {FieldTag::kTokenId, "tok-1"},
        {FieldTag::kIssuer, "https://issuer.example"},
        {FieldTag::kUser, "app"},
        {FieldTag::kDatabase, "shop"}}},
      {EventType::kStatement,
       s,
       1,
       t + 12'000'000,
       {{FieldTag::kStatementKind, "query"}, {FieldTag::kText, "SELECT 1"}}},
      {EventType::kCompletion, s, 2, t + 13'000'000, {{FieldTag::kTag, "SELECT 1"}}},
      {EventType::kStatement,
       s,
       3,
       t + 20'000'000,
       {{FieldTag::kStatementKind, "parse"}, {FieldTag::kText, "SELECT * FROM missing\n\x1b[31m"}}},
      {EventType::kError,
       s,
       4,
       t + 21'000'000,
       {{FieldTag::kSqlState, "42P01"},
        {FieldTag::kMessage, "relation \"missing\" does not exist"},
        {FieldTag::kOrigin, "upstream"}}},
      {EventType::kStatement,
       s,
       5,
       t + 30'000'000,
       {{FieldTag::kStatementKind, "query"},
        {FieldTag::kText, "COPY t FROM STDIN"},
        {FieldTag::kTextBytes, "1048576"}}},
      {EventType::kSessionEnd, s, 6, t + 1'500'000'000, {{FieldTag::kReason, "client closed"}}},
  };
}

std::vector<StoredEvent> bob_session() {
  const uint64_t s = kBobSession;
  const uint64_t t = kBaseTimeNs + 60'000'000'000ull;
  return {
      {EventType::kSessionStart,
       s,
       0,
       t,
       {{FieldTag::kConnection, "staging-db"},
        {FieldTag::kChainMember, "bob"},
        {FieldTag::kUser, "reporting"}}},
      {EventType::kStatement,
       s,
       1,
       t + 1'000'000,
       {{FieldTag::kStatementKind, "query"}, {FieldTag::kText, "SELECT now()"}}},
  };
}

std::vector<StoredEvent> rejected() {
  return {{EventType::kAuthFailure,
           kRejected,
           0,
           kBaseTimeNs + 5'000'000'000ull,
           {{FieldTag::kConnection, "prod-db"},
            {FieldTag::kChainMember, "mallory"},
            {FieldTag::kReason, "token expired"}}}};
}

class Sessions : public ::testing::Test {
 protected:
  void SetUp() override {
    auto flusher = Flusher::create(testing::test_options(dir_.path(), 2));
    ASSERT_TRUE(flusher.has_value());
    ASSERT_TRUE((*flusher)->start().has_value());
    // Events of one session always come from one shard, interleaved with other sessions.
    const auto alice = alice_session();
    const auto bob = bob_session();
    for (size_t i = 0; i < alice.size(); ++i) {
      ASSERT_TRUE(testing::push_blocking((*flusher)->ring(0), alice[i]));
      if (i < bob.size()) {
        ASSERT_TRUE(testing::push_blocking((*flusher)->ring(0), bob[i]));
      }
    }
    ASSERT_TRUE(testing::push_blocking((*flusher)->ring(1), rejected()[0]));
    ASSERT_TRUE((*flusher)->stop().has_value());
  }
  testing::TempDir dir_;
};

TEST_F(Sessions, SummariesCarryIdentityCountsAndEnd) {
  auto sessions = list_sessions(dir_.path());
  ASSERT_TRUE(sessions.has_value()) << sessions.error().message;
  ASSERT_EQ(sessions->size(), 3u);
  const SessionSummary& a = (*sessions)[0];  // sorted by start time
  EXPECT_EQ(a.session_id, kAliceSession);
  EXPECT_EQ(a.shard, 0);
  EXPECT_EQ(a.start_ns, kBaseTimeNs);
  EXPECT_EQ(a.end_ns, kBaseTimeNs + 1'500'000'000);
  EXPECT_TRUE(a.ended);
  EXPECT_EQ(a.chain, (std::vector<std::string>{"alice", "ci-runner"}));
  EXPECT_EQ(a.groups, (std::vector<std::string>{"dba", "ci"}));
  EXPECT_EQ(a.connection, "prod-db");
  EXPECT_EQ(a.client_address, "10.0.0.5:51234");
  EXPECT_EQ(a.user, "app");
  EXPECT_EQ(a.database, "shop");
  EXPECT_EQ(a.protocol, "postgres");
  EXPECT_EQ(a.statements, 3u);
  EXPECT_EQ(a.errors, 1u);
  EXPECT_EQ(a.events, 7u);
  EXPECT_EQ(a.end_reason, "client closed");

  const SessionSummary& r = (*sessions)[1];
  EXPECT_EQ(r.session_id, kRejected);
  EXPECT_EQ(r.shard, 1);
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(r.errors, 1u);
  EXPECT_EQ(r.end_reason, "token expired");
  EXPECT_EQ(r.chain, (std::vector<std::string>{"mallory"}));

  const SessionSummary& b = (*sessions)[2];
  EXPECT_EQ(b.session_id, kBobSession);
  EXPECT_FALSE(b.ended);
  EXPECT_EQ(b.statements, 1u);
}

TEST_F(Sessions, FiltersByChainMemberConnectionUserTimeAndLimit) {
  // Designated initializers that skip members trip -Wmissing-field-initializers on GCC 12.
  const auto ids = [&](auto&& set) {
    SessionFilter filter;
    set(filter);
    std::vector<uint64_t> out;
    auto sessions = list_sessions(dir_.path(), filter);
    EXPECT_TRUE(sessions.has_value());
    for (const auto& s : *sessions) out.push_back(s.session_id);
    return out;
  };
  EXPECT_EQ(ids([](SessionFilter& f) { f.chain_member = "ci-runner"; }),
            std::vector<uint64_t>{kAliceSession});
  EXPECT_EQ(ids([](SessionFilter& f) { f.chain_member = "alice"; }),
            std::vector<uint64_t>{kAliceSession});
  EXPECT_EQ(ids([](SessionFilter& f) { f.chain_member = "nobody"; }), std::vector<uint64_t>{});
  EXPECT_EQ(ids([](SessionFilter& f) { f.connection = "prod-db"; }),
            (std::vector<uint64_t>{kAliceSession, kRejected}));
  EXPECT_EQ(ids([](SessionFilter& f) { f.user = "reporting"; }),
            std::vector<uint64_t>{kBobSession});
  EXPECT_EQ(ids([](SessionFilter& f) { f.session_id = kBobSession; }),
            std::vector<uint64_t>{kBobSession});
  EXPECT_EQ(ids([](SessionFilter& f) { f.from_ns = kBaseTimeNs + 2'000'000'000ull; }),
            (std::vector<uint64_t>{kRejected, kBobSession}));
  EXPECT_EQ(ids([](SessionFilter& f) { f.to_ns = kBaseTimeNs + 1'000; }),
            std::vector<uint64_t>{kAliceSession});
  EXPECT_EQ(ids([](SessionFilter& f) { f.limit = 2; }),
            (std::vector<uint64_t>{kAliceSession, kRejected}));
}

TEST_F(Sessions, LoadSessionReturnsItsEventsInOrder) {
  auto events = load_session(dir_.path(), kAliceSession);
  ASSERT_TRUE(events.has_value());
  EXPECT_EQ(*events, alice_session());
  auto missing = load_session(dir_.path(), 0x77);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("0000000000000077"), std::string::npos);
}

TEST_F(Sessions, TableListsEachSession) {
  auto sessions = list_sessions(dir_.path());
  ASSERT_TRUE(sessions.has_value());
  const std::string table = format_sessions_table(*sessions);
  EXPECT_TRUE(table.starts_with("SESSION ")) << table;
  EXPECT_NE(table.find("00000000000000a1"), std::string::npos) << table;
  EXPECT_NE(table.find("1b0b000000000002"), std::string::npos);
  EXPECT_NE(table.find("alice → ci-runner → prod-db"), std::string::npos);
  EXPECT_NE(table.find("client closed"), std::string::npos);
  EXPECT_NE(table.find("token expired"), std::string::npos);
  EXPECT_NE(table.find("(open)"), std::string::npos);
  EXPECT_NE(table.find("2023-11-14T22:13:20.000Z"), std::string::npos) << table;
  EXPECT_NE(table.find("1.500s"), std::string::npos);
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 4);
}

TEST_F(Sessions, ReplayReadsLikeATranscript) {
  auto events = load_session(dir_.path(), kAliceSession);
  ASSERT_TRUE(events.has_value());
  const std::string replay = format_replay(*events);
  const auto has = [&](std::string_view text) {
    EXPECT_NE(replay.find(text), std::string::npos) << "missing \"" << text << "\" in\n" << replay;
  };
  has("session 00000000000000a1  alice → ci-runner → prod-db\n");  // the chain, then where it went
  has("connection prod-db");
  has("client 10.0.0.5:51234");
  has("  +0.000s  session start  alice → ci-runner via prod-db from 10.0.0.5:51234 (postgres, "
      "user app, database shop, groups dba,ci)\n");
  has("  +0.012s  query SELECT 1\n");
  has("  +0.013s  completed SELECT 1\n");
  has("  +0.020s  parse SELECT * FROM missing\\n\\x1b[31m\n");
  has("  +0.021s  error 42P01 relation \"missing\" does not exist (upstream)\n");
  has("query COPY t FROM STDIN … [truncated, 1048576 bytes in full]");
  has("  +1.500s  session end: client closed\n");
  EXPECT_EQ(replay.find('\x1b'), std::string::npos) << "escape sequences are neutralized";
}

TEST_F(Sessions, JsonVariantsCarryTheSameFacts) {
  auto sessions = list_sessions(dir_.path());
  ASSERT_TRUE(sessions.has_value());
  const nlohmann::json list = sessions_to_json(*sessions);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0]["session_id"], "00000000000000a1");
  EXPECT_EQ(list[0]["chain"], nlohmann::json({"alice", "ci-runner"}));
  EXPECT_EQ(list[0]["statements"], 3);
  EXPECT_EQ(list[0]["end_reason"], "client closed");

  auto events = load_session(dir_.path(), kAliceSession);
  ASSERT_TRUE(events.has_value());
  const nlohmann::json replay = replay_to_json(*events);
  EXPECT_EQ(replay["session_id"], "00000000000000a1");
  ASSERT_EQ(replay["events"].size(), 7u);
  EXPECT_EQ(replay["events"][0]["type"], "session_start");
  EXPECT_EQ(replay["events"][0]["fields"]["chain"], nlohmann::json({"alice", "ci-runner"}));
  EXPECT_EQ(replay["events"][0]["fields"]["groups"], nlohmann::json({"dba", "ci"}));
  EXPECT_EQ(replay["events"][4]["fields"]["sqlstate"], "42P01");
  EXPECT_DOUBLE_EQ(replay["events"][1]["offset_s"].get<double>(), 0.012);
  // Not UTF-8 in a recorded value: dumped with a replacement character, never an exception.
  StoredEvent odd = (*events)[1];
  odd.fields[1].value = "SELECT '\xff'";
  EXPECT_NE(dump_json(event_to_json(odd, odd.time_ns)).find("\xef\xbf\xbd"), std::string::npos);
}

TEST_F(Sessions, VerifyRendersOkAndFindings) {
  auto report = verify_trail(dir_.path());
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(format_verify(*report),
            "ok: 2 shards, 2 segments, 12 records (10 of 3 sessions, 2 seals, 0 checkpoints of which "
            "0 heartbeats), node test-node, signatures NOT checked (no --keys), no anchor file\n");
  Keyring keyring;
  ASSERT_TRUE(keyring.add({testing::test_key()->id(), testing::test_key()->public_key(), "test-node", ""}));
  report = verify_trail(dir_.path(), VerifyOptions{.keyring = &keyring, .anchor_file = ""});
  ASSERT_TRUE(report.has_value());
  EXPECT_TRUE(format_verify(*report).find(", signatures verified, ") != std::string::npos)
      << format_verify(*report);
  EXPECT_EQ(verify_to_json(*report)["ok"], true);

  VerifyReport bad = *report;
  VerifyFinding finding;
  finding.kind = FindingKind::kChainMismatch;
  finding.segment_file = "shard-00/00000001.seg";
  finding.segment_sequence = 1;
  finding.record_index = 3;
  finding.byte_offset = 700;
  finding.what = "chain hash mismatch";
  bad.finding = finding;
  EXPECT_TRUE(format_verify(bad).starts_with(
      "FAILED: shard-00/00000001.seg record 3 at byte 700: chain hash mismatch\n"))
      << format_verify(bad);
  const nlohmann::json json = verify_to_json(bad);
  EXPECT_EQ(json["ok"], false);
  EXPECT_EQ(json["finding"]["kind"], "chain_mismatch");
  EXPECT_EQ(json["finding"]["record_index"], 3);
}

TEST(SessionIds, PrintAndParseAsSixteenHexDigits) {
  EXPECT_EQ(format_session_id(0xa1), "00000000000000a1");
  EXPECT_EQ(format_session_id(UINT64_MAX), "ffffffffffffffff");
  EXPECT_EQ(parse_session_id("00000000000000a1"), 0xa1u);
  EXPECT_EQ(parse_session_id("A1"), 0xa1u);
  EXPECT_FALSE(parse_session_id("").has_value());
  EXPECT_FALSE(parse_session_id("0000000000000000a1").has_value());
  EXPECT_FALSE(parse_session_id("xyz").has_value());
}

// CI provenance and exchange lineage are read back from the session's first record and can be
// searched; an admin API request reads as a one-event entry with its outcome.
TEST(SessionSummary, ProvenanceLineageAndAdminEvents) {
  const std::vector<StoredEvent> session = {
      {EventType::kSessionStart,
       7,
       0,
       kBaseTimeNs,
       {{FieldTag::kConnection, "db-prod"},
        {FieldTag::kChainMember, "alice"},
        {FieldTag::kChainMember, "ci-runner"},
        {FieldTag::kClaim, "repository_id=892341"},
        {FieldTag::kClaim, "ref=refs/heads/main"},
        {FieldTag::kTokenLineage, "root-jti"}}}};
  const SessionSummary s = summarize_session(session);
  using Claims = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(s.claims, (Claims{{"repository_id", "892341"}, {"ref", "refs/heads/main"}}));
  EXPECT_EQ(s.lineage, std::vector<std::string>{"root-jti"});
  SessionFilter filter;
  filter.claims = {{"ref", "refs/heads/main"}, {"repository_id", "892341"}};
  EXPECT_TRUE(matches(filter, s));
  filter.claims = {{"ref", "refs/heads/dev"}};
  EXPECT_FALSE(matches(filter, s));
  const std::string replay = format_replay(session);
  EXPECT_NE(replay.find("provenance repository_id=892341, ref=refs/heads/main\n"), std::string::npos)
      << replay;
  EXPECT_NE(replay.find("exchanged from tokens root-jti\n"), std::string::npos) << replay;

  const std::vector<StoredEvent> admin = {{EventType::kAdmin,
                                           8,
                                           0,
                                           kBaseTimeNs,
                                           {{FieldTag::kAction, "token_exchange"},
                                            {FieldTag::kOutcome, "refused"},
                                            {FieldTag::kHttpStatus, "400"},
                                            {FieldTag::kChainMember, "alice"},
                                            {FieldTag::kReason, "invalid_scope: widening"}}}};
  const SessionSummary a = summarize_session(admin);
  EXPECT_TRUE(a.ended);
  EXPECT_EQ(a.protocol, "admin");
  EXPECT_EQ(a.errors, 1u);
  EXPECT_EQ(a.end_reason, "token_exchange refused: invalid_scope: widening");
  EXPECT_NE(format_replay(admin).find("admin token_exchange refused (400) for alice: invalid_scope"),
            std::string::npos)
      << format_replay(admin);
}

// An approval hold reads back as the request, then its decision with the approvers or the reason.
TEST(SessionSummary, ReviewEventsReplayWithApproversAndReasons) {
  const std::string hash(64, 'a');
  const std::vector<StoredEvent> session = {
      {EventType::kReview, 9, 0, kBaseTimeNs,
       {{FieldTag::kReviewId, "r-0011223344556677"},
        {FieldTag::kOutcome, "requested"},
        {FieldTag::kRule, "schema-changes"},
        {FieldTag::kReason, "alter of app.accounts (statement 1)"},
        {FieldTag::kStatementHash, hash}}},
      {EventType::kReview, 9, 1, kBaseTimeNs + 1,
       {{FieldTag::kReviewId, "r-0011223344556677"},
        {FieldTag::kOutcome, "approved"},
        {FieldTag::kApprover, "bob"},
        {FieldTag::kApprover, "carol \u2192 review-bot"}}},
      {EventType::kReview, 9, 2, kBaseTimeNs + 2,
       {{FieldTag::kReviewId, "r-8899aabbccddeeff"},
        {FieldTag::kOutcome, "denied"},
        {FieldTag::kApprover, "bob"},
        {FieldTag::kReason, "not in the change window"}}}};
  const std::string replay = format_replay(session);
  EXPECT_NE(replay.find("review r-0011223344556677 requested: alter of app.accounts (statement 1) "
                        "(rule schema-changes, sha256 " + hash + ")"),
            std::string::npos)
      << replay;
  EXPECT_NE(replay.find("review r-0011223344556677 approved by bob, carol \u2192 review-bot"),
            std::string::npos)
      << replay;
  EXPECT_NE(replay.find("review r-8899aabbccddeeff denied by bob: not in the change window"),
            std::string::npos)
      << replay;
  EXPECT_EQ(event_type_name(EventType::kReview), "review");
  EXPECT_EQ(field_tag_name(FieldTag::kStatementHash), "statement_hash");
}

}  // namespace
}  // namespace gh::rec
