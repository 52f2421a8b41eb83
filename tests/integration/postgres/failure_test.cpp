// Failures and shutdown through gatehouse against a real PostgreSQL: the upstream backend killed
// mid-query, and SIGTERM draining idle and busy sessions; each ends cleanly and is recorded.
#include <gtest/gtest.h>
#include <signal.h>

#include <iostream>

#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/pq.hpp"
#include "tests/integration/support/trail_events.hpp"

namespace gh::test {
namespace {

using namespace std::chrono_literals;

PgConn direct(const PostgresServer& pg) {
  PgConn c = pq_connect(pg.conninfo(), PostgresServer::kSuperuserPassword);
  EXPECT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get());
  return c;
}

// The one recorded session whose statements include `text`; null if none or several.
nlohmann::json session_with_statement(const Gateway& gw, const std::string& text) {
  nlohmann::json found;
  int matches = 0;
  for (const auto& s : trail_sessions(gw)) {
    auto replay = trail_replay(gw, s["session_id"].get<std::string>());
    if (replay.is_null()) continue;
    for (const auto& e : replay["events"]) {
      if (e["type"] == "statement" && event_field(e, "text") == text) {
        found = replay;
        ++matches;
        break;
      }
    }
  }
  EXPECT_EQ(matches, 1) << "sessions recording '" << text << "'";
  return matches == 1 ? found : nlohmann::json();
}

TEST(UpstreamFailure, BackendKilledMidQueryFailsTheClientAndIsRecorded) {
  PostgresServer pg;
  Gateway gw(pg);
  const std::string token = gw.token("alice", {"devs"});
  PgConn monitor = direct(pg);

  PgConn conn = pq_connect(gw.conninfo(), token);
  ASSERT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get()) << gw.log();
  const std::string sql = "SELECT pg_sleep(30)";
  ASSERT_EQ(PQsendQuery(conn.get(), sql.c_str()), 1);
  std::string backend;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    const QueryOutcome o = pq_query(monitor.get(),
                                    "SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' "
                                    "AND state = 'active' AND pid <> pg_backend_pid()",
                                    5s);
    if (o.ok && o.rows.size() == 1) {
      backend = o.rows[0][0];
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_FALSE(backend.empty()) << "the query never ran upstream";
  monitor.reset();  // the crash restart ends every backend, this one too

  const auto killed_at = std::chrono::steady_clock::now();
  auto kill9 = run({"kill", "-9", backend});
  ASSERT_EQ(kill9.exit_code, 0) << kill9.err;

  // The client learns at once (not after pg_sleep's 30 s) that its session is gone.
  const QueryOutcome o = pq_await(conn.get(), 10s);
  EXPECT_FALSE(o.timed_out) << "the client hung after its upstream died";
  EXPECT_FALSE(o.ok);
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, 5s);
  EXPECT_FALSE(o.error.empty());
  EXPECT_TRUE(o.connection_bad) << o.error;
  std::cout << "client saw: " << o.sqlstate << " " << o.error;
  conn.reset();

  // PostgreSQL crash-recovers; the gateway serves new sessions against it.
  pg.wait_ready();
  auto fresh = gw.psql(token, {"-A", "-t", "-c", "SELECT 'alive after crash'"});
  EXPECT_EQ(fresh.exit_code, 0) << fresh.err << gw.log();
  EXPECT_EQ(fresh.out, "alive after crash\n");

  ASSERT_EQ(gw.stop(), 0) << gw.log();
  const nlohmann::json session = session_with_statement(gw, sql);
  ASSERT_FALSE(session.is_null());
  EXPECT_TRUE(session["ended"].get<bool>()) << session.dump(1);
  bool error_recorded = false;
  for (const auto& e : session["events"]) {
    const std::string origin = event_field(e, "origin");
    if (e["type"] == "error" && (origin == "gateway" || origin == "upstream")) error_recorded = true;
  }
  EXPECT_TRUE(error_recorded) << session.dump(1);
  EXPECT_EQ(session["events"].back()["type"], "session_end") << session.dump(1);
  EXPECT_FALSE(session["end_reason"].get<std::string>().empty());
  std::cout << "recorded end: " << session["end_reason"].get<std::string>() << "\n";

  auto verify = gw.cli({"verify", gw.trail_dir().string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

// Collects the SQLSTATE of errors libpq hands to the notice receiver (an ErrorResponse that
// arrives while the connection is idle, such as a FATAL before the server closes).
void capture_notice(void* arg, const PGresult* r) {
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  static_cast<std::string*>(arg)->append(state ? state : "?").append(" ");
}

TEST(Drain, SigtermEndsIdleSessionsWith57P01AndLetsARunningQueryFinish) {
  PostgresServer pg;
  Gateway gw(pg);  // drain_timeout_ms: 5000
  const std::string token = gw.token("alice", {"devs"});
  PgConn monitor = direct(pg);

  PgConn idle = pq_connect(gw.conninfo(), token);
  ASSERT_EQ(PQstatus(idle.get()), CONNECTION_OK) << PQerrorMessage(idle.get()) << gw.log();
  std::string idle_notices;
  PQsetNoticeReceiver(idle.get(), capture_notice, &idle_notices);
  ASSERT_TRUE(pq_query(idle.get(), "SELECT 'idle session'").ok);

  PgConn busy = pq_connect(gw.conninfo(), token);
  ASSERT_EQ(PQstatus(busy.get()), CONNECTION_OK) << PQerrorMessage(busy.get());
  std::string busy_notices;
  PQsetNoticeReceiver(busy.get(), capture_notice, &busy_notices);
  const std::string sql = "SELECT pg_sleep(1), 'finished'";
  ASSERT_EQ(PQsendQuery(busy.get(), sql.c_str()), 1);
  ASSERT_TRUE(pq_wait_for_value(monitor.get(),
                                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $q$" +
                                    sql + "$q$",
                                "1", 10s));

  const auto start = std::chrono::steady_clock::now();
  gw.process().signal(SIGTERM);

  // The running query gets its result, then the connection ends with 57P01.
  const QueryOutcome result = pq_await(busy.get(), 10s);
  ASSERT_FALSE(result.timed_out);
  EXPECT_TRUE(result.ok) << result.error;
  EXPECT_EQ(result.rows, (std::vector<std::vector<std::string>>{{"", "finished"}}));

  // Drained well inside drain_timeout_ms (5 s), with exit code 0.
  const int code = gw.process().wait(15s);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(code, 0) << gw.log();
  EXPECT_LT(took, 5s) << gw.log();

  // Both clients see their connection end with admin_shutdown. Everything has arrived by now
  // (the gateway is gone): PQconsumeInput reads it, PQisBusy parses it, and libpq hands an
  // ErrorResponse that arrives on an idle connection to the notice receiver.
  for (PGconn* c : {idle.get(), busy.get()}) {
    for (int i = 0; i < 100 && PQstatus(c) == CONNECTION_OK; ++i) {
      PQconsumeInput(c);
      PQisBusy(c);
      if (PQstatus(c) == CONNECTION_OK) std::this_thread::sleep_for(20ms);
    }
    PQisBusy(c);
    EXPECT_EQ(PQstatus(c), CONNECTION_BAD);
  }
  EXPECT_EQ(idle_notices, "57P01 ");
  EXPECT_EQ(busy_notices, "57P01 ");

  // Recorded: both sessions ended by the shutdown, the busy one after its completion.
  const auto sessions = trail_sessions(gw);
  ASSERT_EQ(sessions.size(), 2u) << sessions.dump(1);
  for (const auto& s : sessions) {
    EXPECT_TRUE(s["ended"].get<bool>());
    EXPECT_EQ(s["end_reason"], "gateway shutdown") << s.dump(1);
  }
  const nlohmann::json recorded = session_with_statement(gw, sql);
  ASSERT_FALSE(recorded.is_null());
  std::string sequence;
  for (const auto& e : recorded["events"]) sequence += e["type"].get<std::string>() + " ";
  // The running query's row is recorded before its completion.
  EXPECT_NE(sequence.find("statement result_row completion session_end"), std::string::npos)
      << sequence;
  EXPECT_NE(recorded.dump().find("SELECT 1"), std::string::npos) << recorded.dump(1);

  auto verify = gw.cli({"verify", gw.trail_dir().string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

}  // namespace
}  // namespace gh::test
