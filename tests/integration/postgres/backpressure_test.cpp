// Back-pressure through gatehouse: a full disk under the trail stops the recording, the full
// recording ring pauses the sessions producing into it, and nothing is lost when space returns.
// Tiny receive-buffer pools stream large results without errors.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sys/mount.h>

#include <atomic>
#include <thread>

#include "tests/integration/support/gateway.hpp"

namespace gh::test {
namespace {

// A small tmpfs the test can fill and then grow; unmounted at the end.
class SmallFilesystem {
 public:
  explicit SmallFilesystem(const std::filesystem::path& at) : at_(at) {
    std::filesystem::create_directories(at_);
    mounted_ = mount("tmpfs", at_.c_str(), "tmpfs", 0, "size=192k") == 0;
  }
  ~SmallFilesystem() {
    if (mounted_) umount2(at_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  bool grow() { return mount("tmpfs", at_.c_str(), "tmpfs", MS_REMOUNT, "size=256m") == 0; }

 private:
  std::filesystem::path at_;
  bool mounted_ = false;
};

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

TEST(Backpressure, FullDiskPausesSessionsAndLosesNoStatement) {
  PostgresServer pg;
  TempDir scratch;
  SmallFilesystem disk(scratch.path() / "trail");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (needs root and mount rights)";

  GatewayOptions options;
  options.shards = 1;
  options.recording_dir = (scratch.path() / "trail").string();
  options.recording_extra = "  ring_bytes: 262144\n";
  Gateway gw(pg, options);
  const std::string token = gw.token("alice", {"devs"});

  constexpr int kStatements = 1000;  // ~1.1 KiB of record each: far more than disk + ring
  const std::string padding(1000, 'x');
  std::atomic<int> done{0};
  std::atomic<bool> failed{false};
  std::thread client([&] {
    PGconn* conn = PQconnectdb((gw.conninfo() + " password=" + token).c_str());
    if (PQstatus(conn) != CONNECTION_OK) {
      failed = true;
      PQfinish(conn);
      return;
    }
    for (int i = 0; i < kStatements; ++i) {
      const std::string sql = "SELECT " + std::to_string(i) + " AS n, '" + padding + "' AS pad";
      PGresult* r = PQexec(conn, sql.c_str());
      if (PQresultStatus(r) != PGRES_TUPLES_OK) failed = true;
      PQclear(r);
      ++done;
    }
    PQfinish(conn);
  });

  // The disk fills, the flusher keeps the records in the ring, the ring fills, the session stops.
  int last = -1;
  for (int i = 0; i < 100 && done.load() != last; ++i) {
    last = done.load();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  const int stalled_at = done.load();
  EXPECT_LT(stalled_at, kStatements) << "the session never paused";
  EXPECT_TRUE(gw.process().running());

  ASSERT_TRUE(disk.grow());
  for (int i = 0; i < 600 && done.load() < kStatements; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  client.join();
  EXPECT_FALSE(failed.load());
  EXPECT_EQ(done.load(), kStatements);
  ASSERT_EQ(gw.stop(), 0) << gw.log();
  EXPECT_NE(gw.log().find("No space left on device"), std::string::npos) << gw.log();

  auto sessions = gw.cli({"sessions", "--dir", gw.trail_dir().string(), "--json"});
  ASSERT_EQ(sessions.exit_code, 0) << sessions.err;
  EXPECT_EQ(count(sessions.out, "\"statements\":" + std::to_string(kStatements)), 1u) << sessions.out;
  auto verify = gw.cli({"verify", gw.trail_dir().string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

TEST(Backpressure, StatementLargerThanTheRingIsRecordedCut) {
  PostgresServer pg;
  GatewayOptions options;
  options.recording_extra = "  ring_bytes: 262144\n";
  Gateway gw(pg, options);
  const std::string token = gw.token("alice", {"devs"});
  TempDir scratch;
  const auto file = scratch.path() / "big.sql";
  write_file(file, "SELECT length('" + std::string(1 << 20, 'y') + "');\n");
  auto r = gw.psql(token, {"-At", "-f", file.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1048576\n");
  ASSERT_EQ(gw.stop(), 0) << gw.log();
  auto sessions = gw.cli({"sessions", "--dir", gw.trail_dir().string(), "--json"});
  const size_t at = sessions.out.find("\"session_id\":\"");
  ASSERT_NE(at, std::string::npos) << sessions.out;
  auto replay = gw.cli({"replay", sessions.out.substr(at + 14, 16), "--dir", gw.trail_dir().string(), "--json"});
  ASSERT_EQ(replay.exit_code, 0) << replay.err;
  // The record keeps the statement's beginning and its full size.
  EXPECT_NE(replay.out.find("SELECT length('yyyy"), std::string::npos);
  EXPECT_NE(replay.out.find("1048594"), std::string::npos) << replay.out.substr(0, 400);
  EXPECT_LT(replay.out.size(), 200000u);
  auto verify = gw.cli({"verify", gw.trail_dir().string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

TEST(Backpressure, TinyReceiveBufferPoolStillStreamsLargeResults) {
  PostgresServer pg;
  GatewayOptions options;
  options.engine_extra = "  buffer_count: 16\n  buffer_bytes: 4096\n";
  Gateway gw(pg, options);
  const std::string token = gw.token("alice", {"devs"});
  const std::string query =
      "SELECT sum(length(t)) FROM (SELECT repeat(md5(i::text), 8) AS t FROM generate_series(1, 200000) i) s";
  auto direct = pg.psql(query);
  ASSERT_EQ(direct.exit_code, 0) << direct.err;
  // 200 000 rows of 256 bytes each cross 16 buffers of 4 KiB many times over.
  auto through = gw.psql(token, {"-At", "-c", "SELECT repeat(md5(i::text), 8) FROM generate_series(1, 200000) i"});
  ASSERT_EQ(through.exit_code, 0) << through.err;
  EXPECT_EQ(through.out.size(), 200000u * 257u);
  EXPECT_EQ(std::to_string(through.out.size() - 200000u) + "\n", direct.out);
}

}  // namespace
}  // namespace gh::test
