// recording.durability: strict against a real PostgreSQL, through libpq and psql: statements run
// and are in the trail when their results arrive, the trail verifies; on a full recording disk
// (a small tmpfs) a statement gets 53100 and does not reach the server, and once space is back
// the next statement runs and is recorded; with the ring full as well, statements are still
// refused at once rather than waiting for the disk.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/pq.hpp"
#include "tests/integration/support/trail_events.hpp"

namespace gh::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

PgConn connect_through(const Gateway& gw, const std::string& token) {
  PgConn c = pq_connect(gw.conninfo(), token);
  EXPECT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get()) << gw.log();
  return c;
}

// Statement texts of every recorded session, in trail order.
std::vector<std::string> recorded_statements(const Gateway& gw) {
  std::vector<std::string> out;
  for (const auto& s : trail_sessions(gw)) {
    auto replay = trail_replay(gw, s["session_id"].get<std::string>());
    for (const auto& e : events_of_type(replay, "statement")) out.push_back(event_field(e, "text"));
  }
  return out;
}

bool contains(const std::vector<std::string>& all, const std::string& one) {
  return std::find(all.begin(), all.end(), one) != all.end();
}

TEST(StrictDurability, StatementsRunAfterTheirRecordsAreDurableAndTheTrailVerifies) {
  PostgresServer pg;
  ASSERT_EQ(pg.psql("CREATE TABLE strict_t (i int, note text); GRANT ALL ON strict_t TO PUBLIC")
                .exit_code,
            0);
  GatewayOptions options;
  options.recording_extra = "  durability: strict\n";
  Gateway gw(pg, options);
  const std::string token = gw.token("alice", {"devs"});
  PgConn conn = connect_through(gw, token);

  const std::string simple = "INSERT INTO strict_t VALUES (1, 'simple')";
  const std::string two = "INSERT INTO strict_t VALUES (2, 'a'); INSERT INTO strict_t VALUES (3, 'b')";
  const std::string extended = "INSERT INTO strict_t VALUES ($1, $2)";
  QueryOutcome o = pq_query(conn.get(), simple, 20s);
  ASSERT_TRUE(o.ok) << o.error << gw.log();
  o = pq_query(conn.get(), two, 20s);
  ASSERT_TRUE(o.ok) << o.error;
  o = pq_query_params(conn.get(), extended, {"4", "extended"}, 20s);
  ASSERT_TRUE(o.ok) << o.error;
  o = pq_query(conn.get(), "SELECT count(*) FROM strict_t", 20s);
  ASSERT_TRUE(o.ok) << o.error;
  ASSERT_EQ(o.rows, (std::vector<std::vector<std::string>>{{"4"}}));

  // The gateway still runs: every statement that ran is in a segment file already.
  const auto statements = recorded_statements(gw);
  EXPECT_TRUE(contains(statements, simple));
  EXPECT_TRUE(contains(statements, two));
  EXPECT_TRUE(contains(statements, extended)) << "the Parse of the extended protocol";

  // psql too (its own session), then a clean stop and a trail that verifies.
  auto r = gw.psql(token, {"-c", "UPDATE strict_t SET note = 'psql' WHERE i = 1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  conn.reset();
  ASSERT_EQ(gw.stop(), 0) << gw.log();
  auto verify = gw.cli({"verify", gw.trail_dir().string(), "--keys", (gw.dir() / "keyring.json").string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_TRUE(verify.out.starts_with("ok:")) << verify.out;
  EXPECT_TRUE(contains(recorded_statements(gw), "UPDATE strict_t SET note = 'psql' WHERE i = 1"));
}

// A tmpfs mounted for the test's lifetime; unmounted (lazily, in case a process still holds a
// file) when it ends.
class SmallDisk {
 public:
  SmallDisk(const fs::path& where, const std::string& size) : path_(where) {
    fs::create_directories(where);
    const std::string options = "size=" + size + ",mode=0755";
    if (::mount("tmpfs", where.c_str(), "tmpfs", 0, options.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

  // Writes a file until the disk refuses more (bounded by the disk's size).
  void fill(const fs::path& file) {
    std::FILE* f = std::fopen(file.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::setvbuf(f, nullptr, _IONBF, 0);
    const std::string chunk(4096, 'x');
    for (int i = 0; i < 64 * 1024; ++i) {
      if (std::fwrite(chunk.data(), 1, chunk.size(), f) != chunk.size()) break;
    }
    std::fclose(f);
  }

 private:
  fs::path path_;
  bool mounted_ = false;
  std::string error_;
};

// Runs `sql` until it succeeds: once space is back, statements are refused until the flusher's
// next retry (every second) writes what waited. Bounded: 50 tries, 200 ms apart.
RunResult run_once_space_is_back(const Gateway& gw, const std::string& token,
                                 const std::string& sql) {
  RunResult r;
  for (int attempt = 0; attempt < 50; ++attempt) {
    r = gw.psql(token, {"-c", sql});
    if (r.exit_code == 0) break;
    std::this_thread::sleep_for(200ms);
  }
  return r;
}

TEST(StrictDurability, FullDiskRefusesStatementsUnrunAndRecordsAgainOnceSpaceIsBack) {
  PostgresServer pg;
  ASSERT_EQ(pg.psql("CREATE TABLE disk_t (i int); GRANT ALL ON disk_t TO PUBLIC").exit_code, 0);
  TempDir mount_root;
  SmallDisk disk(mount_root.path() / "trail", "1m");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (" << disk.error() << ")";
  GatewayOptions options;
  options.recording_dir = (mount_root.path() / "trail").string();
  options.recording_extra = "  durability: strict\n";
  Gateway gw(pg, options);
  const std::string token = gw.token("alice", {"devs"});
  auto r = gw.psql(token, {"-c", "INSERT INTO disk_t VALUES (1)"});
  ASSERT_EQ(r.exit_code, 0) << r.err << gw.log();

  disk.fill(mount_root.path() / "trail" / "filler");
  // Longer than what is left of the segment file's last page, so the record needs a new page.
  const std::string refused = "INSERT INTO disk_t VALUES (2) -- " + std::string(6000, 'p');
  r = gw.psql(token, {"-v", "VERBOSITY=verbose", "-c", refused});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("53100"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("disk is full"), std::string::npos) << r.err;
  auto rows = pg.psql("SELECT string_agg(i::text, ',' ORDER BY i) FROM disk_t");
  EXPECT_EQ(rows.out, "1\n") << "the refused statement must not reach the server";

  // Space comes back: the flusher writes what waited, and statements run again.
  fs::remove(mount_root.path() / "trail" / "filler");
  r = run_once_space_is_back(gw, token, "INSERT INTO disk_t VALUES (3)");
  ASSERT_EQ(r.exit_code, 0) << r.err << gw.log();
  rows = pg.psql("SELECT string_agg(i::text, ',' ORDER BY i) FROM disk_t");
  EXPECT_EQ(rows.out, "1,3\n");
  EXPECT_NE(gw.log().find("No space left on device"), std::string::npos) << gw.log();

  ASSERT_EQ(gw.stop(), 0) << gw.log();
  auto verify = gw.cli({"verify", gw.trail_dir().string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  // The refused statement is in the trail (it waited in the ring), followed by its error.
  bool refused_recorded = false;
  for (const auto& s : trail_sessions(gw)) {
    auto replay = trail_replay(gw, s["session_id"].get<std::string>());
    const auto& events = replay["events"];
    for (size_t i = 0; i + 1 < events.size(); ++i) {
      if (events[i]["type"] == "statement" && event_field(events[i], "text") == refused) {
        refused_recorded = events[i + 1]["type"] == "error" &&
                           event_field(events[i + 1], "sqlstate") == "53100";
      }
    }
  }
  EXPECT_TRUE(refused_recorded);
  EXPECT_TRUE(contains(recorded_statements(gw), "INSERT INTO disk_t VALUES (3)"));
}

// The disk fails long enough for the ring to fill (256 KiB, statements of 60 000 bytes): every
// statement still gets 53100 at once, in the session that filled the ring and in a new one,
// instead of waiting for the disk; none reaches the server. Once space is back the waiting
// records are written in order, each refused statement followed by its error, and statements
// run again.
TEST(StrictDurability, FullRingOnAFailingDiskRefusesStatementsAtOnceAndServiceResumes) {
  PostgresServer pg;
  ASSERT_EQ(pg.psql("CREATE TABLE ring_t (i int); GRANT ALL ON ring_t TO PUBLIC").exit_code, 0);
  TempDir mount_root;
  SmallDisk disk(mount_root.path() / "trail", "4m");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (" << disk.error() << ")";
  GatewayOptions options;
  options.shards = 1;
  options.recording_dir = (mount_root.path() / "trail").string();
  options.recording_extra = "  durability: strict\n  ring_bytes: 262144\n";
  Gateway gw(pg, options);
  const std::string token = gw.token("alice", {"devs"});
  auto r = gw.psql(token, {"-c", "INSERT INTO ring_t VALUES (1)"});
  ASSERT_EQ(r.exit_code, 0) << r.err << gw.log();

  disk.fill(mount_root.path() / "trail" / "filler");
  constexpr int kStatements = 10;  // 600 000 bytes of records for a 262 144-byte ring
  std::vector<std::string> refused;
  std::string script;
  for (int i = 0; i < kStatements; ++i) {
    refused.push_back("INSERT INTO ring_t SELECT " + std::to_string(100 + i));
    script += refused.back() + " WHERE length('" + std::string(60000, 'p') + "') > 0;\n";
  }
  write_file(gw.dir() / "fill.sql", script);
  r = gw.psql(token, {"-v", "ON_ERROR_STOP=0", "-v", "VERBOSITY=verbose", "-f",
                      (gw.dir() / "fill.sql").string()});
  ASSERT_FALSE(r.timed_out) << "statements waited for the disk instead of being refused";
  size_t errors = 0;
  for (size_t at = r.err.find("ERROR:  53100"); at != std::string::npos;
       at = r.err.find("ERROR:  53100", at + 1)) {
    ++errors;
  }
  EXPECT_EQ(errors, size_t(kStatements)) << r.err.substr(0, 2000);

  // A new session while the ring is still full: it logs in and its statement is refused too.
  r = gw.psql(token, {"-v", "VERBOSITY=verbose", "-c", "INSERT INTO ring_t VALUES (2)"});
  ASSERT_FALSE(r.timed_out);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("53100"), std::string::npos) << r.err;
  auto rows = pg.psql("SELECT string_agg(i::text, ',' ORDER BY i) FROM ring_t");
  EXPECT_EQ(rows.out, "1\n") << "no refused statement may reach the server";

  fs::remove(mount_root.path() / "trail" / "filler");
  r = run_once_space_is_back(gw, token, "INSERT INTO ring_t VALUES (3)");
  ASSERT_EQ(r.exit_code, 0) << r.err << gw.log();
  rows = pg.psql("SELECT string_agg(i::text, ',' ORDER BY i) FROM ring_t");
  EXPECT_EQ(rows.out, "1,3\n");

  ASSERT_EQ(gw.stop(), 0) << gw.log();
  auto verify = gw.cli({"verify", gw.trail_dir().string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  // Every refused statement is in the trail, each followed by its 53100.
  std::vector<std::string> recorded_refusals;
  for (const auto& s : trail_sessions(gw)) {
    auto replay = trail_replay(gw, s["session_id"].get<std::string>());
    const auto& events = replay["events"];
    for (size_t i = 0; i + 1 < events.size(); ++i) {
      if (events[i]["type"] == "statement" && events[i + 1]["type"] == "error" &&
          event_field(events[i + 1], "sqlstate") == "53100") {
        const std::string text = event_field(events[i], "text");
        if (text == "INSERT INTO ring_t VALUES (3)") continue;  // tried while the disk came back
        recorded_refusals.push_back(text.substr(0, text.find(" WHERE")));  // the statement's key
      }
    }
  }
  std::vector<std::string> expected = refused;
  expected.push_back("INSERT INTO ring_t VALUES (2)");
  std::sort(expected.begin(), expected.end());
  std::sort(recorded_refusals.begin(), recorded_refusals.end());
  EXPECT_EQ(recorded_refusals, expected);
}

}  // namespace
}  // namespace gh::test
