// pgbench through gatehouse against a real PostgreSQL: initialisation (COPY, DDL, VACUUM) and
// TPC-B-like load in every query mode (simple, extended, prepared), with no failed transaction.
#include <gtest/gtest.h>

#include <regex>

#include "tests/integration/support/gateway.hpp"

namespace gh::test {
namespace {

struct PgbenchSummary {
  bool failed_line = false;  // "number of failed transactions: N" was printed
  long failed = -1;
  long processed = -1;       // "number of transactions actually processed: N"
};

PgbenchSummary parse_pgbench(const std::string& out) {
  PgbenchSummary s;
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(number of failed transactions: (\d+))"))) {
    s.failed_line = true;
    s.failed = std::stol(m[1]);
  }
  if (std::regex_search(out, m, std::regex(R"(number of transactions actually processed: (\d+))"))) {
    s.processed = std::stol(m[1]);
  }
  return s;
}

class Pgbench : public ::testing::Test {
 protected:
  RunResult pgbench(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"pgbench", "-h", "127.0.0.1", "-p", std::to_string(gw_.port()),
                                     "-U", "alice"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("appdb");  // the gateway's connection name
    return run(argv, {{"PGPASSWORD", token_}, {"PGSSLMODE", "disable"}, {"PGCONNECT_TIMEOUT", "10"}},
               std::chrono::seconds(90));
  }

  PostgresServer pg_;
  Gateway gw_{pg_};
  std::string token_ = gw_.token("bench-bot", {"devs"}, "10m", {"ci-runner"});
};

TEST_F(Pgbench, InitialisesAndRunsEveryQueryModeWithoutFailures) {
  auto init = pgbench({"-i", "-s", "2"});
  ASSERT_EQ(init.exit_code, 0) << init.out << init.err << gw_.log();
  // The data really landed upstream (pgbench -i loads it with COPY FROM STDIN).
  auto count = pg_.psql("SELECT count(*) FROM pgbench_accounts");
  ASSERT_EQ(count.exit_code, 0) << count.err;
  EXPECT_EQ(count.out, "200000\n");

  for (const std::string mode : {"simple", "extended", "prepared"}) {
    SCOPED_TRACE("-M " + mode);
    auto r = pgbench({"-M", mode, "-c", "8", "-j", "2", "-T", "5"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_FALSE(r.timed_out);
    const PgbenchSummary s = parse_pgbench(r.out);
    EXPECT_GT(s.processed, 0) << r.out << r.err;
    if (s.failed_line) {
      EXPECT_EQ(s.failed, 0) << r.out;
    }
    EXPECT_EQ(r.err.find("error"), std::string::npos) << r.err;
  }
  // The TPC-B script's writes went through: every transaction adds a pgbench_history row.
  auto history = pg_.psql("SELECT count(*) > 0 FROM pgbench_history");
  EXPECT_EQ(history.out, "t\n") << history.err;

  ASSERT_EQ(gw_.stop(), 0) << gw_.log();
  auto verify = gw_.cli({"verify", gw_.trail_dir().string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

}  // namespace
}  // namespace gh::test
