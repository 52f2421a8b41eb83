// psql through gatehouse against a real PostgreSQL: the end-to-end path a user first tries.
#include <gtest/gtest.h>

#include "tests/integration/support/gateway.hpp"

namespace gh::test {
namespace {

TEST(Psql, StatementsRunAndAreRecordedWithTheIdentityChain) {
  PostgresServer pg;
  Gateway gw(pg);
  const std::string token = gw.token("alice", {"devs"}, "10m", {"ci-runner"});
  auto r = gw.psql(token, {"-c", "CREATE TABLE items(id int, name text)", "-c",
                           "INSERT INTO items VALUES (1, 'one'), (2, 'two')", "-c",
                           "SELECT name FROM items ORDER BY id"});
  ASSERT_EQ(r.exit_code, 0) << r.err << gw.log();
  EXPECT_NE(r.out.find("INSERT 0 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" one\n two\n(2 rows)"), std::string::npos) << r.out;

  auto failing = gw.psql(token, {"-c", "SELECT 1/0"});
  EXPECT_NE(failing.exit_code, 0);
  EXPECT_NE(failing.err.find("division by zero"), std::string::npos) << failing.err;

  ASSERT_EQ(gw.stop(), 0) << gw.log();  // drains and flushes the recording

  auto sessions = gw.cli({"sessions", "--dir", gw.trail_dir().string()});
  ASSERT_EQ(sessions.exit_code, 0) << sessions.err;
  EXPECT_NE(sessions.out.find("alice → ci-runner"), std::string::npos) << sessions.out;

  auto json = gw.cli({"sessions", "--dir", gw.trail_dir().string(), "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const size_t at = json.out.find("\"session_id\":\"");
  ASSERT_NE(at, std::string::npos) << json.out;
  // Both sessions are recorded; replay each and look for what psql sent.
  std::string replays;
  for (size_t p = at; p != std::string::npos; p = json.out.find("\"session_id\":\"", p + 1)) {
    const std::string id = json.out.substr(p + 14, 16);
    auto replay = gw.cli({"replay", id, "--dir", gw.trail_dir().string()});
    ASSERT_EQ(replay.exit_code, 0) << replay.err;
    replays += replay.out;
  }
  EXPECT_NE(replays.find("INSERT INTO items VALUES (1, 'one'), (2, 'two')"), std::string::npos) << replays;
  EXPECT_NE(replays.find("INSERT 0 2"), std::string::npos) << replays;
  EXPECT_NE(replays.find("SELECT 2"), std::string::npos) << replays;
  EXPECT_NE(replays.find("22012"), std::string::npos) << replays;
  EXPECT_NE(replays.find("division by zero"), std::string::npos) << replays;

  auto verify = gw.cli({"verify", gw.trail_dir().string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

// Asynchronous messages pass through: NoticeResponse, NotificationResponse, ParameterStatus.
TEST(Psql, NoticesNotificationsAndParameterChangesReachTheClient) {
  PostgresServer pg;
  Gateway gw(pg);
  const std::string token = gw.token("alice", {"devs"});
  auto r = gw.psql(token, {"-c", "DO $$ BEGIN RAISE NOTICE 'hello from upstream'; END $$", "-c",
                           "LISTEN jobs", "-c", "NOTIFY jobs, 'build 42 done'", "-c",
                           "SET application_name = 'deploy-bot'", "-c", "SHOW application_name", "-c",
                           "SET client_encoding = 'LATIN1'", "-c", "\\echo encoding=:ENCODING"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("NOTICE:  hello from upstream"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("Asynchronous notification \"jobs\" with payload \"build 42 done\""),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(" deploy-bot\n"), std::string::npos) << r.out;
  // psql learns the encoding only from the ParameterStatus message the server sends on SET.
  EXPECT_NE(r.out.find("encoding=LATIN1"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace gh::test
