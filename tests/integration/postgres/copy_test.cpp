// 100 MB COPY through gatehouse against a real PostgreSQL, both ways: what comes out through the
// gateway is byte-identical to what comes out directly, and what goes in through it lands intact.
#include <gtest/gtest.h>

#include <iostream>
#include <sstream>

#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/trail_events.hpp"

namespace gh::test {
namespace {

// "sha256 size" of a file, computed by the system tools (the 100 MB never enter test memory).
std::string digest(const std::filesystem::path& file) {
  auto r = shell("sha256sum < '" + file.string() + "' | cut -d' ' -f1 | tr -d '\\n'; echo \" $(stat -c %s '" +
                 file.string() + "')\"");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

uint64_t size_of(const std::string& digest_line) {
  std::istringstream in(digest_line);
  std::string hash;
  uint64_t size = 0;
  in >> hash >> size;
  return size;
}

std::string quote(const std::string& s) { return "'" + s + "'"; }

TEST(Copy, HundredMegabytesOutAndInAreByteIdentical) {
  // Synchronized scans would let a COPY of a big table start mid-table, changing the row order.
  PostgresServer pg(PostgresOptions{.settings = {{"synchronize_seqscans", "off"}}});
  Gateway gw(pg);
  const std::string token = gw.token("loader", {"devs"});
  TempDir files;

  // ~105 MB of COPY text: tabs, backslashes, newlines, non-ASCII and NULLs all need escaping.
  auto made = pg.psql(
      "CREATE TABLE t(id int, payload text, note text);"
      "INSERT INTO t SELECT i, repeat(md5(i::text), 30),"
      "  CASE WHEN i % 7 = 0 THEN NULL"
      "       WHEN i % 5 = 0 THEN E'tab\\there\\\\back\\nnew line é ü'"
      "       ELSE 'row ' || i END"
      "  FROM generate_series(1, 108000) i;"
      "CREATE TABLE t2(LIKE t);");
  ASSERT_EQ(made.exit_code, 0) << made.err;

  const auto direct_file = files.path() / "direct.copy";
  const auto through_file = files.path() / "through.copy";
  const auto back_file = files.path() / "back.copy";
  const std::string direct_psql = "psql -X -q -v ON_ERROR_STOP=1 -d " + quote(pg.conninfo());
  const std::string gateway_psql = "psql -X -q -v ON_ERROR_STOP=1 -d " + quote(gw.conninfo());
  const std::map<std::string, std::string> direct_env = {{"PGPASSWORD", PostgresServer::kSuperuserPassword}};
  const std::map<std::string, std::string> gateway_env = {{"PGPASSWORD", token}};
  const auto timeout = std::chrono::seconds(120);

  auto out_direct = shell(direct_psql + " -c 'COPY t TO STDOUT' > " + quote(direct_file.string()),
                          direct_env, timeout);
  ASSERT_EQ(out_direct.exit_code, 0) << out_direct.err;
  auto out_through = shell(gateway_psql + " -c 'COPY t TO STDOUT' > " + quote(through_file.string()),
                           gateway_env, timeout);
  ASSERT_EQ(out_through.exit_code, 0) << out_through.err << gw.log();

  const std::string source = digest(direct_file);
  ASSERT_GE(size_of(source), 100u * 1000 * 1000) << source;
  std::cout << "COPY text (sha256 bytes): " << source << "\n";
  EXPECT_EQ(digest(through_file), source);

  // In through the gateway (COPY FROM STDIN, the file on psql's stdin), out directly.
  auto in_through = shell(gateway_psql + " -c 'COPY t2 FROM STDIN' < " + quote(direct_file.string()),
                          gateway_env, timeout);
  ASSERT_EQ(in_through.exit_code, 0) << in_through.err << gw.log();
  auto rows = pg.psql("SELECT count(*) FROM t2");
  EXPECT_EQ(rows.out, "108000\n") << rows.err;
  auto out_back = shell(direct_psql + " -c 'COPY t2 TO STDOUT' > " + quote(back_file.string()),
                        direct_env, timeout);
  ASSERT_EQ(out_back.exit_code, 0) << out_back.err;
  EXPECT_EQ(digest(back_file), source);

  // The statements are in the trail, which verifies.
  ASSERT_EQ(gw.stop(), 0) << gw.log();
  auto verify = gw.cli({"verify", gw.trail_dir().string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  std::string recorded;
  for (const auto& session : trail_sessions(gw)) {
    auto replay = trail_replay(gw, session["session_id"].get<std::string>());
    if (replay.is_null()) continue;
    for (const auto& e : replay["events"]) recorded += event_field(e, "text") + event_field(e, "tag") + "\n";
  }
  EXPECT_NE(recorded.find("COPY t TO STDOUT\nCOPY 108000\n"), std::string::npos) << recorded;
  EXPECT_NE(recorded.find("COPY t2 FROM STDIN\nCOPY 108000\n"), std::string::npos) << recorded;
}

}  // namespace
}  // namespace gh::test
