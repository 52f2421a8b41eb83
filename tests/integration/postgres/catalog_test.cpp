// The session catalog end to end: psql sessions through the gateway are indexed by the running
// gateway's flusher, `gatehouse sessions` answers each filter from the catalog, and after the
// catalog is deleted, `gatehouse reindex` rebuilds the same answers from the segments.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/integration/support/gateway.hpp"

namespace gh::test {
namespace {

using nlohmann::json;

// psql through the gateway, logging in as `user`.
RunResult psql_as(const Gateway& gw, const std::string& token, const std::string& connection,
                  const std::string& user, const std::vector<std::string>& statements) {
  std::vector<std::string> argv = {"psql", "-X", "-d", gw.conninfo(connection, user)};
  for (const auto& s : statements) argv.insert(argv.end(), {"-c", s});
  return run(argv, {{"PGPASSWORD", token}}, std::chrono::seconds(60));
}

std::string utc(std::time_t t) {
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return text;
}

TEST(Catalog, SessionsAnswerFromTheCatalogAndReindexRebuildsTheSameAnswers) {
  PostgresServer pg;
  GatewayOptions options;
  options.connections[0].extra = "    deny:\n      - name: no-drops\n        statements: [drop]\n";
  ConnectionSpec reports;
  reports.name = "reportdb";
  options.connections.push_back(reports);
  Gateway gw(pg, options);

  // alice through the CI runner: one statement allowed, one refused by the guardrail.
  const std::string alice = gw.token("alice", {"devs"}, "10m", {"ci-runner"});
  auto first = psql_as(gw, alice, "appdb", "alice", {"SELECT 1", "DROP TABLE nothing"});
  EXPECT_NE(first.err.find("no-drops"), std::string::npos) << first.err << gw.log();
  // Everything after `since` belongs to the later sessions (times have one-second resolution).
  const std::time_t since = std::time(nullptr) + 1;
  while (std::time(nullptr) < since) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::string bob = gw.token("bob", {"devs"});
  ASSERT_EQ(psql_as(gw, bob, "reportdb", "reporter", {"SELECT 2"}).exit_code, 0) << gw.log();
  const std::string carol = gw.token("carol", {"devs"}, "10m", {"ci-runner", "deploy-agent"});
  ASSERT_EQ(psql_as(gw, carol, "reportdb", "alice", {"SELECT 3", "SELECT 4"}).exit_code, 0);
  ASSERT_EQ(gw.stop(), 0) << gw.log();

  const std::string dir = gw.trail_dir().string();
  ASSERT_TRUE(std::filesystem::exists(dir + "/catalog.sqlite"));
  const auto sessions = [&](std::vector<std::string> filters, RunResult* raw = nullptr) {
    std::vector<std::string> args = {"sessions", "--dir", dir, "--json"};
    args.insert(args.end(), filters.begin(), filters.end());
    RunResult r = gw.cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (raw != nullptr) *raw = r;
    return r.out;
  };
  // Subjects of the listed sessions, in order.
  const auto subjects = [](const std::string& out) {
    std::vector<std::string> names;
    const json list = json::parse(out, nullptr, false);
    for (const auto& s : list) names.push_back(s["chain"][0]);
    return names;
  };
  using Names = std::vector<std::string>;
  const std::vector<std::pair<std::vector<std::string>, Names>> cases = {
      {{}, {"alice", "bob", "carol"}},
      {{"--actor", "ci-runner"}, {"alice", "carol"}},
      {{"--actor", "deploy-agent"}, {"carol"}},
      {{"--user", "reporter"}, {"bob"}},
      {{"--user", "alice"}, {"alice", "carol"}},
      {{"--connection", "reportdb"}, {"bob", "carol"}},
      {{"--connection", "reportdb", "--actor", "ci-runner"}, {"carol"}},
      {{"--since", utc(since)}, {"bob", "carol"}},
      {{"--until", utc(since)}, {"alice"}},
      {{"--since", utc(since), "--connection", "appdb"}, {}},
      {{"--since", utc(since), "--user", "alice", "--actor", "deploy-agent"}, {"carol"}},
  };
  std::vector<std::string> answers;
  for (const auto& [filters, expected] : cases) {
    RunResult raw;
    answers.push_back(sessions(filters, &raw));
    EXPECT_EQ(subjects(answers.back()), expected) << json(filters).dump();
    EXPECT_EQ(raw.err.find("scanning"), std::string::npos) << "answered from the catalog: " << raw.err;
  }
  const json all = json::parse(answers[0]);
  EXPECT_EQ(all[0]["connection"], "appdb");
  EXPECT_EQ(all[0]["client_address"].get<std::string>().rfind("127.0.0.1:", 0), 0u) << all[0];
  EXPECT_EQ(all[0]["statements"], 2);
  EXPECT_EQ(all[0]["verdicts"], json({{"allowed", 1}, {"refused", 1}, {"masked_rows", 0}}));
  EXPECT_EQ(all[2]["chain"], json({"carol", "ci-runner", "deploy-agent"}));
  EXPECT_EQ(all[2]["statements"], 2);
  EXPECT_EQ(all[2]["ended"], true);
  EXPECT_FALSE(all[2]["segments"].empty());

  // Without its catalog, sessions still answers (from the segments) and says how to rebuild it.
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(dir + "/catalog.sqlite" + suffix);
  RunResult fallback;
  EXPECT_EQ(sessions({"--actor", "ci-runner"}, &fallback), answers[1]);
  EXPECT_NE(fallback.err.find("gatehouse reindex " + dir), std::string::npos) << fallback.err;

  auto reindexed = gw.cli({"reindex", dir});
  ASSERT_EQ(reindexed.exit_code, 0) << reindexed.err;
  EXPECT_NE(reindexed.out.find("3 sessions"), std::string::npos) << reindexed.out;
  for (size_t i = 0; i < cases.size(); ++i) {
    RunResult raw;
    EXPECT_EQ(sessions(cases[i].first, &raw), answers[i]) << json(cases[i].first).dump();
    EXPECT_EQ(raw.err.find("scanning"), std::string::npos) << raw.err;
  }
  // Reindexing again changes nothing.
  ASSERT_EQ(gw.cli({"reindex", dir}).exit_code, 0);
  EXPECT_EQ(sessions({}), answers[0]);
}

// A gateway killed mid-run leaves its catalog "live" with the last batch unapplied: sessions
// notices that nobody holds the trail any more, answers from the segments, and reindex repairs.
TEST(Catalog, AfterACrashSessionsScansTheSegmentsUntilReindexed) {
  PostgresServer pg;
  Gateway gw(pg);
  const std::string dir = gw.trail_dir().string();
  const std::string alice = gw.token("alice", {"devs"}, "10m", {"ci-runner"});
  ASSERT_EQ(psql_as(gw, alice, "appdb", "alice", {"SELECT 1"}).exit_code, 0) << gw.log();
  // While it runs, the catalog is live and answers (within its 200 ms apply interval).
  std::string live;
  for (int i = 0; i < 50 && live.find("ci-runner") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    live = gw.cli({"sessions", "--dir", dir, "--actor", "ci-runner"}).out;
  }
  EXPECT_NE(live.find("alice → ci-runner"), std::string::npos) << live;
  gw.process().signal(SIGKILL);
  gw.process().wait(std::chrono::seconds(10));

  auto after = gw.cli({"sessions", "--dir", dir, "--actor", "ci-runner", "--json"});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  EXPECT_NE(after.err.find("did not stop cleanly"), std::string::npos) << after.err;
  EXPECT_NE(after.out.find("\"alice\",\"ci-runner\""), std::string::npos) << after.out;
  ASSERT_EQ(gw.cli({"reindex", dir}).exit_code, 0);
  auto rebuilt = gw.cli({"sessions", "--dir", dir, "--actor", "ci-runner", "--json"});
  EXPECT_EQ(rebuilt.err, "");
  EXPECT_EQ(rebuilt.out, after.out);
  auto scanned = gw.cli({"sessions", "--dir", dir, "--actor", "ci-runner", "--json", "--scan"});
  EXPECT_EQ(scanned.err, "") << "--scan reads the segments without a word about the catalog";
  EXPECT_EQ(scanned.out, after.out);
}

}  // namespace
}  // namespace gh::test
