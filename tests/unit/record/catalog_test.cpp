// The session catalog: fed live from a real flusher, queried with every filter and combination,
// rebuilt from the segments, and its missing, corrupt, stale and fallen-behind states. The
// segment scan (list_sessions) is the reference every catalog answer is compared with.
#include <gtest/gtest.h>

#include <sqlite3.h>

#include <filesystem>
#include <functional>

#include "record/catalog.hpp"
#include "record/flusher.hpp"
#include "record/reader.hpp"
#include "record/segment.hpp"
#include "record_test_support.hpp"

namespace gh::rec {
namespace {

using testing::kBaseTimeNs;
constexpr uint64_t kSecondNs = 1'000'000'000ull;

// A session: who, where, when, and how many statements, refusals and masked rows.
struct Spec {
  uint64_t id;
  std::vector<std::string> chain;
  std::string user;
  std::string connection;
  uint64_t start_s;  // seconds after kBaseTimeNs
  uint32_t statements;
  uint32_t refused;
  uint32_t masked_rows;
  bool ends;
  std::vector<std::string> claims;
};

const std::vector<Spec>& specs() {
  static const std::vector<Spec> all = {
      {0xa1, {"alice", "ci-runner"}, "app", "prod-db", 0, 3, 1, 2, true, {"ref=refs/heads/main"}},
      {0xa2, {"alice"}, "reporting", "staging-db", 100, 1, 0, 0, true, {}},
      {0xb1, {"bob", "ci-runner", "deploy-agent"}, "app", "prod-db", 200, 2, 0, 5, true,
       {"ref=refs/heads/dev", "repository=shop"}},
      // An id above 2^63 sorts after the others of its start time, as an unsigned number.
      {0xf000000000000001ull, {"carol"}, "app", "staging-db", 300, 0, 0, 0, false, {}},
      {0x0c, {"carol", "ci-runner"}, "app", "staging-db", 300, 4, 2, 0, true,
       {"ref=refs/heads/main", "repository=shop"}},
      {0xd1, {"dave"}, "reporting", "prod-db", 5000, 1, 0, 1, true, {}},
  };
  return all;
}

std::vector<StoredEvent> events_of(const Spec& s) {
  const uint64_t t = kBaseTimeNs + s.start_s * kSecondNs;
  std::vector<StoredEvent> out;
  StoredEvent start{EventType::kSessionStart, s.id, 0, t, {}};
  start.fields.push_back({FieldTag::kProtocol, "postgres"});
  start.fields.push_back({FieldTag::kConnection, s.connection});
  start.fields.push_back({FieldTag::kClientAddress, "10.0.0.9:4000"});
  for (const auto& m : s.chain) start.fields.push_back({FieldTag::kChainMember, m});
  start.fields.push_back({FieldTag::kGroup, "ci"});
  start.fields.push_back({FieldTag::kUser, s.user});
  start.fields.push_back({FieldTag::kDatabase, "shop"});
  for (const auto& c : s.claims) start.fields.push_back({FieldTag::kClaim, c});
  out.push_back(start);
  uint32_t seq = 1;
  const auto at = [&] { return t + seq * 10'000'000ull; };
  for (uint32_t i = 0; i < s.statements; ++i) {
    StoredEvent st = testing::statement(s.id, seq, 300);
    st.time_ns = at();
    out.push_back(st);
    ++seq;
    if (i < s.refused) {
      out.push_back({EventType::kError,
                     s.id,
                     seq,
                     at(),
                     {{FieldTag::kSqlState, "42501"},
                      {FieldTag::kMessage, "refused"},
                      {FieldTag::kOrigin, "gateway"},
                      {FieldTag::kRule, "no-drop"}}});
      ++seq;
    }
  }
  for (uint32_t i = 0; i < s.masked_rows; ++i) {
    out.push_back({EventType::kMaskedRow, s.id, seq, at(), {{FieldTag::kText, "****"}}});
    ++seq;
  }
  if (s.ends) {
    out.push_back({EventType::kSessionEnd, s.id, seq, at(), {{FieldTag::kReason, "client closed"}}});
  }
  return out;
}

class CatalogTest : public ::testing::Test {
 protected:
  std::string catalog_file() const { return dir_.path() + "/catalog.sqlite"; }

  // Records every spec through a flusher with small segments, two shards, events of sessions
  // interleaved; the feed indexes what the flusher writes.
  void record(CatalogFeedOptions feed_options) {
    auto options = testing::test_options(dir_.path(), 2);
    options.segment_bytes_max = limits::segment_bytes_min;  // sessions span segments
    std::unique_ptr<CatalogFeed> feed;
    options.on_written = [&feed](uint16_t shard, uint64_t segment, std::span<const std::byte> r) {
      feed->observe(shard, segment, r);
    };
    auto flusher = Flusher::create(options);
    ASSERT_TRUE(flusher.has_value()) << flusher.error().message;
    feed_options.trail_dir = dir_.path();
    auto started = CatalogFeed::start(feed_options);
    ASSERT_TRUE(started.has_value()) << started.error().message;
    feed = std::move(*started);
    ASSERT_TRUE((*flusher)->start().has_value());
    std::vector<std::vector<StoredEvent>> sessions;
    for (const Spec& s : specs()) sessions.push_back(events_of(s));
    for (size_t i = 0;; ++i) {
      bool any = false;
      for (size_t k = 0; k < sessions.size(); ++k) {
        if (i >= sessions[k].size()) continue;
        any = true;
        ASSERT_TRUE(testing::push_blocking((*flusher)->ring(uint16_t(k % 2)), sessions[k][i]));
      }
      if (!any) break;
    }
    ASSERT_TRUE((*flusher)->stop().has_value());
    feed->stop();
    dropped_ = feed->dropped_sessions();
  }

  std::unique_ptr<Catalog> open_catalog() {
    auto c = open_sqlite_catalog(catalog_file());
    EXPECT_TRUE(c.has_value()) << c.error().message;
    return c ? std::move(*c) : nullptr;
  }

  static std::vector<uint64_t> ids(const std::vector<SessionSummary>& list) {
    std::vector<uint64_t> out;
    for (const auto& s : list) out.push_back(s.session_id);
    return out;
  }

  testing::TempDir dir_;
  uint64_t dropped_ = 0;
};

CatalogFeedOptions feed_options(const std::string& file) {
  CatalogFeedOptions o;
  o.file = file;
  o.apply_interval_ms = 5;
  o.batch_sessions_max = 2;  // many small transactions: deltas of one session meet in the table
  return o;
}

TEST_F(CatalogTest, LiveFeedHoldsWhatTheSegmentsHold) {
  record(feed_options(catalog_file()));
  auto catalog = open_catalog();
  auto status = catalog->status();
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->state, CatalogState::kClean) << status->reason;
  EXPECT_EQ(catalog->session_count(), specs().size());

  auto scanned = list_sessions(dir_.path());
  ASSERT_TRUE(scanned.has_value());
  auto indexed = catalog->query({});
  ASSERT_TRUE(indexed.has_value()) << indexed.error().message;
  EXPECT_EQ(*indexed, *scanned);
  EXPECT_EQ(ids(*indexed), (std::vector<uint64_t>{0xa1, 0xa2, 0xb1, 0x0c, 0xf000000000000001ull, 0xd1}));

  const SessionSummary& a = (*indexed)[0];
  EXPECT_EQ(a.chain, (std::vector<std::string>{"alice", "ci-runner"}));
  EXPECT_EQ(a.groups, std::vector<std::string>{"ci"});
  EXPECT_EQ(a.user, "app");
  EXPECT_EQ(a.connection, "prod-db");
  EXPECT_EQ(a.protocol, "postgres");
  EXPECT_EQ(a.client_address, "10.0.0.9:4000");
  EXPECT_EQ(a.start_ns, kBaseTimeNs);
  EXPECT_TRUE(a.ended);
  EXPECT_EQ(a.end_reason, "client closed");
  EXPECT_EQ(a.statements, 3u);
  EXPECT_EQ(a.refused, 1u);
  EXPECT_EQ(a.allowed(), 2u);
  EXPECT_EQ(a.masked_rows, 2u);
  EXPECT_EQ(a.claims, (std::vector<std::pair<std::string, std::string>>{{"ref", "refs/heads/main"}}));
  EXPECT_GT(a.segments.size(), 1u) << "4 KiB segments: the session spans several";
  const SessionSummary& open = (*indexed)[4];
  EXPECT_FALSE(open.ended);
  EXPECT_EQ(open.shard, 1);
}

TEST_F(CatalogTest, ReindexGivesTheLiveCatalogAgainAndIsIdempotent) {
  record(feed_options(catalog_file()));
  std::vector<SessionSummary> live;
  {
    auto catalog = open_catalog();
    auto all = catalog->query({});
    ASSERT_TRUE(all.has_value());
    live = *all;
  }
  const std::string rebuilt_file = dir_.path() + "/rebuilt.sqlite";
  for (int round = 0; round < 2; ++round) {
    auto report = rebuild_sqlite_catalog(dir_.path(), rebuilt_file);
    ASSERT_TRUE(report.has_value()) << report.error().message;
    EXPECT_EQ(report->sessions, specs().size());
    EXPECT_TRUE(report->replaced.empty());
    auto rebuilt = open_sqlite_catalog(rebuilt_file);
    ASSERT_TRUE(rebuilt.has_value());
    auto all = (*rebuilt)->query({});
    ASSERT_TRUE(all.has_value());
    EXPECT_EQ(*all, live) << "round " << round;
    EXPECT_EQ((*rebuilt)->status()->state, CatalogState::kClean);
  }
  // Reindexing the live catalog in place changes nothing either.
  ASSERT_TRUE(rebuild_sqlite_catalog(dir_.path(), catalog_file()).has_value());
  EXPECT_EQ(*open_catalog()->query({}), live);
}

TEST_F(CatalogTest, EveryFilterAndCombinationAnswersAsTheScan) {
  record(feed_options(catalog_file()));
  auto catalog = open_catalog();
  const uint64_t t = kBaseTimeNs;
  struct Case {
    std::string name;
    std::function<void(SessionFilter&)> set;
    std::vector<uint64_t> expected;
  };
  const uint64_t big = 0xf000000000000001ull;
  const std::vector<Case> cases = {
      {"user", [](SessionFilter& f) { f.user = "reporting"; }, {0xa2, 0xd1}},
      {"actor first", [](SessionFilter& f) { f.chain_member = "alice"; }, {0xa1, 0xa2}},
      {"actor later", [](SessionFilter& f) { f.chain_member = "ci-runner"; }, {0xa1, 0xb1, 0x0c}},
      {"actor last", [](SessionFilter& f) { f.chain_member = "deploy-agent"; }, {0xb1}},
      {"actor unknown", [](SessionFilter& f) { f.chain_member = "nobody"; }, {}},
      {"connection", [](SessionFilter& f) { f.connection = "prod-db"; }, {0xa1, 0xb1, 0xd1}},
      {"since", [&](SessionFilter& f) { f.from_ns = t + 250 * kSecondNs; }, {0x0c, big, 0xd1}},
      {"until", [&](SessionFilter& f) { f.to_ns = t + 100 * kSecondNs; }, {0xa1, 0xa2}},
      {"window", [&](SessionFilter& f) {
         f.from_ns = t + 150 * kSecondNs;
         f.to_ns = t + 300 * kSecondNs;
       }, {0xb1, 0x0c, big}},
      {"claim", [](SessionFilter& f) { f.claims = {{"ref", "refs/heads/main"}}; }, {0xa1, 0x0c}},
      {"two claims", [](SessionFilter& f) {
         f.claims = {{"repository", "shop"}, {"ref", "refs/heads/main"}};
       }, {0x0c}},
      {"id", [&](SessionFilter& f) { f.session_id = big; }, {big}},
      {"user+connection", [](SessionFilter& f) {
         f.user = "app";
         f.connection = "staging-db";
       }, {0x0c, big}},
      {"actor+connection", [](SessionFilter& f) {
         f.chain_member = "ci-runner";
         f.connection = "prod-db";
       }, {0xa1, 0xb1}},
      {"actor+user+since", [&](SessionFilter& f) {
         f.chain_member = "carol";
         f.user = "app";
         f.from_ns = t + 300 * kSecondNs;
       }, {0x0c, big}},
      {"all of them", [&](SessionFilter& f) {
         f.user = "app";
         f.chain_member = "ci-runner";
         f.connection = "prod-db";
         f.claims = {{"repository", "shop"}};
         f.from_ns = t + 100 * kSecondNs;
         f.to_ns = t + 250 * kSecondNs;
       }, {0xb1}},
      {"user+until, none", [&](SessionFilter& f) {
         f.user = "reporting";
         f.to_ns = t + 50 * kSecondNs;
       }, {}},
      {"limit", [](SessionFilter& f) {
         f.connection = "staging-db";
         f.limit = 2;
       }, {0xa2, 0x0c}},
  };
  for (const Case& c : cases) {
    SessionFilter filter;
    c.set(filter);
    auto indexed = catalog->query(filter);
    ASSERT_TRUE(indexed.has_value()) << c.name << ": " << indexed.error().message;
    auto scanned = list_sessions(dir_.path(), filter);
    ASSERT_TRUE(scanned.has_value());
    EXPECT_EQ(ids(*indexed), c.expected) << c.name;
    EXPECT_EQ(*indexed, *scanned) << c.name;
  }
}

TEST_F(CatalogTest, MissingCatalogIsNoneAndCorruptOneIsAnErrorThatReindexReplaces) {
  record(feed_options(dir_.path() + "/elsewhere.sqlite"));
  auto missing = open_sqlite_catalog_readonly(catalog_file());
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(*missing, nullptr);

  testing::write_text(catalog_file(), std::string(8192, 'x'));
  auto corrupt = open_sqlite_catalog_readonly(catalog_file());
  ASSERT_FALSE(corrupt.has_value());
  EXPECT_NE(corrupt.error().message.find(catalog_file()), std::string::npos)
      << corrupt.error().message;
  EXPECT_FALSE(open_sqlite_catalog(catalog_file()).has_value());

  auto report = rebuild_sqlite_catalog(dir_.path(), catalog_file());
  ASSERT_TRUE(report.has_value()) << report.error().message;
  EXPECT_FALSE(report->replaced.empty());
  auto reopened = open_sqlite_catalog_readonly(catalog_file());
  ASSERT_TRUE(reopened.has_value()) << reopened.error().message;
  ASSERT_NE(*reopened, nullptr);
  EXPECT_EQ(*(*reopened)->query({}), *list_sessions(dir_.path()));
}

TEST_F(CatalogTest, ACatalogThatMissesRecordsSaysSoUntilReindexed) {
  // Created after the trail already held records: stale from the start.
  record(feed_options(catalog_file()));
  const std::string late = dir_.path() + "/late.sqlite";
  std::vector<std::string> errors;
  auto options = feed_options(late);
  options.trail_dir = dir_.path();
  options.on_error = [&](const std::string& m) { errors.push_back(m); };
  auto feed = CatalogFeed::start(options);
  ASSERT_TRUE(feed.has_value());
  (*feed)->stop();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("reindex"), std::string::npos) << errors[0];
  {
    auto catalog = open_sqlite_catalog(late);
    auto status = (*catalog)->status();
    EXPECT_EQ(status->state, CatalogState::kStale);
    EXPECT_NE(status->reason.find("before the catalog"), std::string::npos) << status->reason;
  }
  // A feed that never closed its catalog (a crash) leaves it live; the next start says stale.
  {
    auto catalog = open_sqlite_catalog(catalog_file());
    ASSERT_TRUE((*catalog)->set_state(CatalogState::kLive).has_value());
  }
  auto again = CatalogFeed::start(feed_options(catalog_file()));
  ASSERT_TRUE(again.has_value());
  (*again)->stop();
  {
    auto status = open_catalog()->status();
    EXPECT_EQ(status->state, CatalogState::kStale);
    EXPECT_NE(status->reason.find("crash"), std::string::npos) << status->reason;
  }
  ASSERT_TRUE(rebuild_sqlite_catalog(dir_.path(), catalog_file()).has_value());
  EXPECT_EQ(open_catalog()->status()->state, CatalogState::kClean);
}

TEST_F(CatalogTest, AFeedThatFallsBehindDropsIntoTheCatalogNeverTheTrail) {
  auto options = feed_options(catalog_file());
  options.pending_sessions_max = 1;
  options.apply_interval_ms = 1000;  // batches pile up: sessions beyond the first are dropped
  options.batch_sessions_max = 1000;
  record(options);
  EXPECT_GT(dropped_, 0u);
  auto status = open_catalog()->status();
  EXPECT_EQ(status->state, CatalogState::kStale);
  EXPECT_NE(status->reason.find("dropped"), std::string::npos) << status->reason;
  auto scanned = list_sessions(dir_.path());
  ASSERT_TRUE(scanned.has_value());
  EXPECT_EQ(scanned->size(), specs().size()) << "every record is in the segments";
}

TEST_F(CatalogTest, ReindexRefusesATrailARecorderHolds) {
  auto flusher = Flusher::create(testing::test_options(dir_.path(), 1));
  ASSERT_TRUE(flusher.has_value());
  auto refused = rebuild_sqlite_catalog(dir_.path(), catalog_file());
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("recording into this trail"), std::string::npos)
      << refused.error().message;
  flusher->reset();
  EXPECT_TRUE(rebuild_sqlite_catalog(dir_.path(), catalog_file()).has_value());
}

// Real file calls; the next fdatasync fails (EIO) when asked.
class FailingSyncIo final : public SegmentIo {
 public:
  bool fail_next = false;
  int open_new(const std::string& path) override { return real().open_new(path); }
  ssize_t write(int fd, std::span<const std::byte> bytes) override { return real().write(fd, bytes); }
  int fdatasync(int fd) override {
    if (std::exchange(fail_next, false)) return -EIO;
    return real().fdatasync(fd);
  }
  int close(int fd) override { return real().close(fd); }
  int rename(const std::string& from, const std::string& to) override { return real().rename(from, to); }
  int unlink(const std::string& path) override { return real().unlink(path); }
  int sync_dir(const std::string& path) override { return real().sync_dir(path); }

 private:
  static SegmentIo& real() { return posix_segment_io(); }
};

// A failed fdatasync cuts written records off the trail; the catalog had indexed them, so it
// must not claim to be complete.
TEST_F(CatalogTest, RecordsCutFromAnAbandonedSegmentLeaveTheCatalogStale) {
  FailingSyncIo io;
  auto options = feed_options(catalog_file());
  options.trail_dir = dir_.path();
  auto feed = CatalogFeed::start(options);
  ASSERT_TRUE(feed.has_value()) << feed.error().message;
  ShardWriterOptions writer_options;
  writer_options.trail_dir = dir_.path();
  writer_options.node_id = "test-node";
  writer_options.key = testing::test_key();
  writer_options.io = &io;
  writer_options.on_written = [&](uint16_t shard, uint64_t segment, std::span<const std::byte> r) {
    (*feed)->observe(shard, segment, r);
  };
  auto writer = ShardWriter::open(writer_options);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  const auto write = [&](const StoredEvent& e) {
    testing::EventView view(e);
    std::vector<std::byte> body(record_body_bytes(view.event));
    encode_record_body(view.event, body);
    ASSERT_TRUE((*writer)->stage(body).has_value());
    ASSERT_TRUE((*writer)->write_staged().has_value());
  };
  write(events_of(specs()[0])[0]);
  ASSERT_TRUE((*writer)->sync().has_value());
  write(events_of(specs()[0])[1]);
  io.fail_next = true;
  ASSERT_FALSE((*writer)->sync().has_value());
  (*feed)->stop();
  auto status = open_catalog()->status();
  EXPECT_EQ(status->state, CatalogState::kStale);
  EXPECT_NE(status->reason.find("abandoned"), std::string::npos) << status->reason;
}

TEST(CatalogSchema, AnotherSchemaVersionIsRefusedWithWhatToDo) {
  testing::TempDir dir;
  const std::string file = dir / "catalog.sqlite";
  ASSERT_TRUE(open_sqlite_catalog(file).has_value());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE meta SET value = '99' WHERE key = 'schema'", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto opened = open_sqlite_catalog_readonly(file);
  ASSERT_FALSE(opened.has_value());
  EXPECT_NE(opened.error().message.find("reindex"), std::string::npos) << opened.error().message;
}

}  // namespace
}  // namespace gh::rec
