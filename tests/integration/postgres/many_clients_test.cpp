// Many concurrent libpq clients through a two-shard gatehouse against a real PostgreSQL: all log
// in, all are open at once, all run their queries, all close, and the gateway stays healthy.
#include <gtest/gtest.h>

#include <latch>
#include <set>
#include <thread>

#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/pq.hpp"
#include "tests/integration/support/trail_events.hpp"

namespace gh::test {
namespace {

using namespace std::chrono_literals;

constexpr int kClients = 200;

// One client's work once every client is connected; "" when all went as expected.
std::string client_queries(PGconn* c, int i) {
  const std::string n = std::to_string(i);
  QueryOutcome a = pq_query(c, "SELECT " + n + " * 2");
  if (!a.ok || a.rows != std::vector<std::vector<std::string>>{{std::to_string(i * 2)}})
    return "simple query: " + a.error;
  QueryOutcome b = pq_query_params(c, "SELECT $1::int + 1, length(repeat('x', $2::int))", {n, "5000"});
  if (!b.ok || b.rows != std::vector<std::vector<std::string>>{{std::to_string(i + 1), "5000"}})
    return "extended query: " + b.error;
  QueryOutcome t = pq_query(c,
                            "BEGIN; CREATE TEMP TABLE t(v int); INSERT INTO t SELECT generate_series(1, " +
                                n + "); SELECT coalesce(sum(v), 0) FROM t; COMMIT");
  if (!t.ok || t.rows != std::vector<std::vector<std::string>>{{std::to_string(i * (i + 1) / 2)}})
    return "transaction: " + t.error;
  return {};
}

TEST(ManyClients, TwoHundredConcurrentSessionsAllSucceedAndTheGatewayStaysHealthy) {
  PostgresServer pg(PostgresOptions{.settings = {{"max_connections", "300"}}});
  Gateway gw(pg);  // two shards
  const std::string token = gw.token("swarm", {"devs"}, "10m", {"ci-runner"});
  PgConn monitor = pq_connect(pg.conninfo(), PostgresServer::kSuperuserPassword);
  ASSERT_EQ(PQstatus(monitor.get()), CONNECTION_OK) << PQerrorMessage(monitor.get());

  std::latch connected(kClients);
  std::latch go(1);
  std::vector<std::string> failures(kClients);
  std::vector<uint32_t> shards(kClients, ~0u);
  std::vector<std::thread> threads;
  const std::string conninfo = gw.conninfo();
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      PgConn c = pq_connect(conninfo, token);
      const bool ok = PQstatus(c.get()) == CONNECTION_OK;
      if (ok) {
        shards[i] = uint32_t(PQbackendPID(c.get())) >> 24;
      } else {
        failures[i] = std::string("connect: ") + PQerrorMessage(c.get());
      }
      connected.count_down();
      go.wait();
      if (ok) failures[i] = client_queries(c.get(), i);
    });
  }
  connected.wait();  // every connect is bounded by connect_timeout
  // All sessions are open at the same time: one upstream backend each.
  std::string upstream;
  const bool all_upstream = pq_wait_for_value(
      monitor.get(), "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_scram'",
      std::to_string(kClients), 10s, &upstream);
  go.count_down();
  for (auto& t : threads) t.join();
  EXPECT_TRUE(all_upstream) << upstream << " upstream backends";

  int failed = 0;
  for (int i = 0; i < kClients; ++i) {
    if (!failures[i].empty() && ++failed <= 5) ADD_FAILURE() << "client " << i << ": " << failures[i];
  }
  EXPECT_EQ(failed, 0) << gw.log();
  EXPECT_EQ(std::set<uint32_t>(shards.begin(), shards.end()), (std::set<uint32_t>{0, 1}));

  // Every client closed: the gateway closes every upstream connection too.
  EXPECT_TRUE(pq_wait_for_value(monitor.get(),
                                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_scram'", "0",
                                10s, &upstream))
      << upstream << " upstream backends left";
  auto after = gw.psql(token, {"-A", "-t", "-c", "SELECT 'healthy'"});
  EXPECT_EQ(after.exit_code, 0) << after.err << gw.log();
  EXPECT_EQ(after.out, "healthy\n");

  ASSERT_EQ(gw.stop(), 0) << gw.log();
  const auto sessions = trail_sessions(gw);
  ASSERT_EQ(sessions.size(), size_t(kClients + 1));
  int terminated = 0;
  for (const auto& s : sessions) {
    if (s["ended"].get<bool>() && s["end_reason"] == "client terminated" && s["errors"] == 0) ++terminated;
  }
  EXPECT_EQ(terminated, kClients + 1);
  auto verify = gw.cli({"verify", gw.trail_dir().string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

}  // namespace
}  // namespace gh::test
