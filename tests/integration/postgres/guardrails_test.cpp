// Deny rules through the real gateway in front of a real PostgreSQL: bypass attempts with psql
// (simple query protocol) and libpq (extended protocol, pipelining, fast-path calls), each
// asserted refused by the named rule AND absent from the server's statement log with the data
// unchanged; allowed statements keep working, and refusals are recorded with their rule.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/pq.hpp"

namespace gh::test {
namespace {

constexpr const char* kPolicy = R"(    deny:
      - name: no-drops
        statements: [drop, truncate]
      - name: no-unbounded-writes
        statements: [delete_without_where, update_without_where]
      - name: no-escape-hatches
        statements: [copy_program, copy_file, alter_system, set_role, do, create_function,
                     lo_export, lo_import, dblink_exec, role, grant]
      - name: victims-frozen
        statements: [delete, update, insert, alter]
        tables: [app.victims]
      - name: no-sleep
        regex: 'pg_sleep'
)";

// What the statements under test could change, read straight from the server as superuser.
std::string fingerprint(const PostgresServer& pg) {
  auto r = pg.psql(
      "SELECT (SELECT count(*) FROM app.victims) || '/' || "
      "(SELECT string_agg(id || ':' || note, ',' ORDER BY id) FROM app.victims) || '/' || "
      "(SELECT count(*) FROM information_schema.columns WHERE table_schema = 'app' AND table_name "
      "= 'victims') || '/' || "
      "(SELECT count(*) FROM pg_roles WHERE rolname = 'intruder') || '/' || "
      "(SELECT count(*) FROM pg_proc WHERE proname = 'evil') || '/' || "
      "(SELECT count(*) FROM pg_largeobject_metadata) || '/' || "
      "(SELECT count(*) FROM pg_rewrite WHERE rulename = 'sneaky') || '/' || "
      "coalesce((SELECT array_to_string(relacl, ',') FROM pg_class WHERE oid = "
      "'app.victims'::regclass), '-') || '/' || "
      "(SELECT count(*) FROM pg_file_settings WHERE name = 'work_mem')");
  return r.exit_code == 0 ? r.out : "error: " + r.err;
}

GatewayOptions guarded_options() {
  GatewayOptions o;
  o.connections[0].extra = kPolicy;
  return o;
}

PostgresOptions logging_options() {
  PostgresOptions o;
  o.settings["log_statement"] = "'all'";
  return o;
}

struct Guarded {
  Guarded() : pg(logging_options()), gw(pg, guarded_options()) {
    auto setup = pg.psql(
        "CREATE SCHEMA app; CREATE TABLE app.victims(id int primary key, note text);"
        "INSERT INTO app.victims VALUES (1, 'one'), (2, 'two'), (3, 'three');"
        "CREATE TABLE app.scratch(id int, note text);");
    if (setup.exit_code != 0) throw std::runtime_error(setup.err);
    token = gw.token("mallory", {"devs"}, "10m", {"agent-7"});
  }
  PostgresServer pg;
  Gateway gw;
  std::string token;
};

bool refused_by(const std::string& err, const std::string& rule) {
  return err.find("ERROR:  42501: statement refused by gatehouse rule \"" + rule + "\"") !=
         std::string::npos;
}

TEST(Guardrails, BypassAttemptsAreRefusedAndNeverReachTheDatabase) {
  Guarded g;
  const std::filesystem::path out_file = g.gw.dir() / "exported";
  const struct {
    std::string sql;
    std::string rule;
  } attempts[] = {
      {"DROP TABLE app.victims", "no-drops"},
      {"drop table app.victims", "no-drops"},
      {"DrOp TaBlE app.victims", "no-drops"},
      {"/* hi */ DROP TABLE app.victims", "no-drops"},
      {"DROP /* a */ TABLE /* b */ app.victims", "no-drops"},
      {"/* outer /* nested */ still a comment */ DROP TABLE app.victims", "no-drops"},
      {"-- a line comment\nDROP TABLE app.victims", "no-drops"},
      {"SELECT '/*'; DROP TABLE app.victims; SELECT '*/'", "no-drops"},
      {"SELECT $$ ; $$; DROP TABLE app.victims", "no-drops"},
      {"SELECT $t$ /* $t$; DROP TABLE app.victims", "no-drops"},
      {"SELECT E'it\\'s'; DROP TABLE app.victims", "no-drops"},
      {"SELECT U&'\\0041'; DROP TABLE app.victims", "no-drops"},
      {"DROP TABLE \"app\".\"victims\"", "no-drops"},
      {"SELECT 1; DROP TABLE app.victims; SELECT 2", "no-drops"},
      {"BEGIN; DROP TABLE app.victims; COMMIT", "no-drops"},
      {"DROP TABLE IF EXISTS app.victims CASCADE", "no-drops"},
      {"DROP SCHEMA app CASCADE", "no-drops"},
      {"TRUNCATE app.victims", "no-drops"},
      {"TRUNCATE TABLE ONLY app.victims RESTART IDENTITY", "no-drops"},
      {"DELETE FROM app.victims", "no-unbounded-writes"},
      {"WITH gone AS (DELETE FROM app.victims RETURNING *) SELECT count(*) FROM gone",
       "no-unbounded-writes"},
      {"EXPLAIN ANALYZE DELETE FROM app.victims", "no-unbounded-writes"},
      {"UPDATE app.victims SET note = 'pwned'", "no-unbounded-writes"},
      {"WITH u AS (UPDATE app.victims SET note = 'x' RETURNING 1) SELECT * FROM u",
       "no-unbounded-writes"},
      {"PREPARE p AS DELETE FROM app.victims", "no-unbounded-writes"},
      {"CREATE RULE sneaky AS ON INSERT TO app.scratch DO INSTEAD DELETE FROM app.victims",
       "no-unbounded-writes"},
      {"DELETE FROM app.victims WHERE id = 1", "victims-frozen"},
      {"UPDATE \"app\".victims SET note = 'x' WHERE id = 2", "victims-frozen"},
      {"INSERT INTO app.victims VALUES (4, 'four')", "victims-frozen"},
      {"ALTER TABLE app.victims DROP COLUMN note", "victims-frozen"},
      {"ALTER TABLE app.victims RENAME TO safe", "victims-frozen"},
      {"COPY app.victims FROM STDIN", "victims-frozen"},
      {"INSERT INTO app.scratch VALUES (9) ON CONFLICT DO NOTHING; "
       "MERGE INTO app.victims v USING (SELECT 1) s ON true WHEN MATCHED THEN DELETE",
       "no-unbounded-writes"},
      {"DO $$ BEGIN EXECUTE 'DROP TABLE app.victims'; END $$", "no-escape-hatches"},
      {"CREATE FUNCTION evil() RETURNS void LANGUAGE sql AS 'DELETE FROM app.victims'",
       "no-escape-hatches"},
      {"COPY app.victims TO PROGRAM 'cat > /dev/null'", "no-escape-hatches"},
      {"COPY (SELECT 1) TO '" + out_file.string() + "'", "no-escape-hatches"},
      {"SELECT lo_export(lo_from_bytea(0, 'x'), '" + out_file.string() + "')", "no-escape-hatches"},
      {"SELECT * FROM pg_catalog.lo_import('/etc/hostname')", "no-escape-hatches"},
      {"SELECT dblink_exec('dbname=postgres', 'DROP TABLE app.victims')", "no-escape-hatches"},
      {"SET ROLE gh_admin", "no-escape-hatches"},
      {"SELECT set_config('role', 'gh_admin', false)", "no-escape-hatches"},
      {"SET SESSION AUTHORIZATION gh_admin", "no-escape-hatches"},
      {"ALTER SYSTEM SET work_mem = '1GB'", "no-escape-hatches"},
      {"CREATE ROLE intruder SUPERUSER", "no-escape-hatches"},
      {"GRANT ALL ON app.victims TO PUBLIC", "no-escape-hatches"},
      {"SELECT pg_sleep(0)", "no-sleep"},
      {"SELECT PG_SLEEP ( 0 )", "no-sleep"},
      {"SET standard_conforming_strings = off", "lexer_settings"},
      {"SET client_encoding = 'SJIS'", "lexer_settings"},
      {"SELEC 1", "unparseable"},
      {"DROP TABLE app.victims /* never closed", "unparseable"},
  };
  static_assert(std::size(attempts) >= 40);
  const std::string before = fingerprint(g.pg);
  ASSERT_EQ(before.find("error"), std::string::npos) << before;
  for (const auto& a : attempts) {
    SCOPED_TRACE(a.sql);
    auto r = g.gw.psql(g.token, {"-v", "VERBOSITY=verbose", "-c", a.sql});
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_TRUE(refused_by(r.err, a.rule)) << r.err;
    EXPECT_EQ(fingerprint(g.pg), before);
  }
  EXPECT_FALSE(std::filesystem::exists(out_file));
  // The server's statement log (log_statement = all) never saw any of them.
  const std::string log = g.pg.log();
  ASSERT_NE(log.find("FROM pg_largeobject_metadata"), std::string::npos)
      << "the server logs statements";
  for (const auto& a : attempts) EXPECT_EQ(log.find(a.sql), std::string::npos) << a.sql;

  // Allowed statements still work on the same connection policy.
  auto ok = g.gw.psql(
      g.token, {"-c", "INSERT INTO app.scratch VALUES (1, 'a'), (2, 'b')", "-c",
                "UPDATE app.scratch SET note = 'c' WHERE id = 2", "-c",
                "DELETE FROM app.scratch WHERE id = 1", "-c",
                "SELECT 'DROP TABLE app.victims' AS quoted, note FROM app.victims ORDER BY id"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("DROP TABLE app.victims | one"), std::string::npos) << ok.out;

  // Each refusal is in the trail with its rule.
  ASSERT_EQ(g.gw.stop(), 0) << g.gw.log();
  auto sessions = g.gw.cli({"sessions", "--dir", g.gw.trail_dir().string(), "--json"});
  ASSERT_EQ(sessions.exit_code, 0) << sessions.err;
  std::string replays;
  for (size_t p = sessions.out.find("\"session_id\":\""); p != std::string::npos;
       p = sessions.out.find("\"session_id\":\"", p + 1)) {
    auto replay =
        g.gw.cli({"replay", sessions.out.substr(p + 14, 16), "--dir", g.gw.trail_dir().string()});
    ASSERT_EQ(replay.exit_code, 0) << replay.err;
    replays += replay.out;
  }
  for (const char* rule : {"no-drops", "no-unbounded-writes", "victims-frozen", "no-escape-hatches",
                           "no-sleep", "lexer_settings", "unparseable"}) {
    EXPECT_NE(replays.find(std::string("42501 statement refused by gatehouse rule \"") + rule),
              std::string::npos)
        << rule;
  }
  EXPECT_NE(replays.find("query DrOp TaBlE app.victims"), std::string::npos);
}

// The extended protocol: a refused Parse gets its error in order, the rest of the batch up to
// Sync is skipped as the server would skip it, and the connection stays usable. A statement
// name reused for a refused statement keeps its earlier, allowed meaning.
TEST(Guardrails, ExtendedProtocolRefusalsStayInSync) {
  Guarded g;
  const std::string before = fingerprint(g.pg);
  PgConn conn = pq_connect(g.gw.conninfo(), g.token);
  ASSERT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get());

  auto params = pq_query_params(conn.get(), "DELETE FROM app.victims WHERE id = $1", {"1"});
  EXPECT_EQ(params.sqlstate, "42501");
  EXPECT_NE(params.error.find("victims-frozen"), std::string::npos) << params.error;
  auto drop = pq_query_params(conn.get(), "DROP TABLE app.victims", {});
  EXPECT_EQ(drop.sqlstate, "42501");
  auto sum = pq_query_params(conn.get(), "SELECT $1::int + 1", {"41"});
  ASSERT_TRUE(sum.ok) << sum.error;
  EXPECT_EQ(sum.rows, (std::vector<std::vector<std::string>>{{"42"}}));

  // Statement-name reuse.
  PGresult* r = PQprepare(conn.get(), "s1", "SELECT count(*) FROM app.victims", 0, nullptr);
  ASSERT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << PQresultErrorMessage(r);
  PQclear(r);
  r = PQprepare(conn.get(), "s1", "DELETE FROM app.victims", 0, nullptr);
  EXPECT_EQ(PQresultStatus(r), PGRES_FATAL_ERROR);
  EXPECT_NE(std::string(PQresultErrorMessage(r)).find("no-unbounded-writes"), std::string::npos);
  PQclear(r);
  r = PQexecPrepared(conn.get(), "s1", 0, nullptr, nullptr, nullptr, 0);
  ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQresultErrorMessage(r);
  EXPECT_STREQ(PQgetvalue(r, 0, 0), "3");
  PQclear(r);

  // A refusal aborts the transaction, as any error of the server's own would.
  ASSERT_TRUE(pq_query(conn.get(), "BEGIN").ok);
  ASSERT_TRUE(pq_query(conn.get(), "INSERT INTO app.scratch VALUES (78, 'in a transaction')").ok);
  EXPECT_EQ(pq_query(conn.get(), "DROP TABLE app.victims").sqlstate, "42501");
  EXPECT_EQ(pq_query(conn.get(), "SELECT 1").sqlstate, "25P02");  // in_failed_sql_transaction
  ASSERT_TRUE(pq_query(conn.get(), "ROLLBACK").ok);

  // Pipelining: allowed, refused, allowed, then Sync; the batch's implicit transaction is rolled
  // back, as the server rolls it back after an error of its own.
  ASSERT_EQ(PQenterPipelineMode(conn.get()), 1);
  ASSERT_EQ(PQsendQueryParams(conn.get(), "INSERT INTO app.scratch VALUES (77, 'pipelined')", 0,
                              nullptr, nullptr, nullptr, nullptr, 0),
            1);
  ASSERT_EQ(PQsendQueryParams(conn.get(), "TRUNCATE app.victims", 0, nullptr, nullptr, nullptr,
                              nullptr, 0),
            1);
  ASSERT_EQ(PQsendQueryParams(conn.get(), "SELECT 2", 0, nullptr, nullptr, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQpipelineSync(conn.get()), 1);
  std::vector<ExecStatusType> statuses;
  std::string error;
  for (int i = 0; i < 20 && statuses.size() < 4; ++i) {
    PGresult* res = PQgetResult(conn.get());
    if (res == nullptr) continue;  // the end of one query's results
    statuses.push_back(PQresultStatus(res));
    if (PQresultStatus(res) == PGRES_FATAL_ERROR) error = PQresultErrorMessage(res);
    PQclear(res);
  }
  EXPECT_EQ(statuses, (std::vector<ExecStatusType>{PGRES_COMMAND_OK, PGRES_FATAL_ERROR,
                                                   PGRES_PIPELINE_ABORTED, PGRES_PIPELINE_SYNC}));
  EXPECT_NE(error.find("no-drops"), std::string::npos) << error;
  ASSERT_EQ(PQexitPipelineMode(conn.get()), 1) << PQerrorMessage(conn.get());
  auto after = pq_query(conn.get(), "SELECT count(*) FROM app.victims");
  ASSERT_TRUE(after.ok) << after.error;
  EXPECT_EQ(after.rows[0][0], "3");
  auto scratch = pq_query(conn.get(), "SELECT count(*) FROM app.scratch WHERE id IN (77, 78)");
  ASSERT_TRUE(scratch.ok) << scratch.error;
  EXPECT_EQ(scratch.rows[0][0], "0");
  EXPECT_EQ(fingerprint(g.pg), before);
}

// Fast-path FunctionCall messages (libpq's large-object client functions use them) are refused
// on a connection with SQL rules; a session started with settings the parser cannot follow
// gets every statement refused.
TEST(Guardrails, FunctionCallsAndLexerSettingsFromStartupAreRefused) {
  Guarded g;
  auto lo = g.gw.psql(g.token, {"-c", "\\lo_import /etc/hostname"});
  EXPECT_NE(lo.exit_code, 0);
  EXPECT_NE(lo.err.find("rule \"function_call\""), std::string::npos) << lo.err;
  auto count = g.pg.psql("SELECT count(*) FROM pg_largeobject_metadata");
  EXPECT_EQ(count.out, "0\n");

  for (const auto& [var, value] : std::vector<std::pair<std::string, std::string>>{
           {"PGOPTIONS", "-c standard_conforming_strings=off"}, {"PGCLIENTENCODING", "SJIS"}}) {
    SCOPED_TRACE(var + "=" + value);
    auto r = run({"psql", "-X", "-d", g.gw.conninfo(), "-c", "SELECT 'harmless'"},
                 {{"PGPASSWORD", g.token}, {var, value}});
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_NE(r.err.find("rule \"lexer_settings\""), std::string::npos) << r.err;
  }
  auto fine = g.gw.psql(g.token, {"-c", "SELECT 'still fine'"});
  EXPECT_EQ(fine.exit_code, 0) << fine.err;
}

// pgbench custom scripts in each query mode (simple, extended, prepared): the refused command
// ends the script with the rule's error, the table is unchanged, and an allowed script runs.
TEST(Guardrails, PgbenchCustomScriptsAreRefusedInEveryQueryMode) {
  Guarded g;
  const std::string before = fingerprint(g.pg);
  auto pgbench = [&](const std::string& mode, const std::string& script,
                     const std::string& transactions) {
    const auto file = g.gw.dir() / "script.sql";
    std::ofstream(file) << script;
    return run({"pgbench", "-n", "-h", "127.0.0.1", "-p", std::to_string(g.gw.port()), "-U",
                "alice", "-M", mode, "-t", transactions, "-f", file.string(), "appdb"},
               {{"PGPASSWORD", g.token}, {"PGSSLMODE", "disable"}, {"PGCONNECT_TIMEOUT", "10"}},
               std::chrono::seconds(60));
  };
  const struct {
    std::string script;
    std::string rule;
  } scripts[] = {
      {"DROP TABLE app.victims;\n", "no-drops"},
      {"\\set id random(1, 3)\nDELETE FROM app.victims WHERE id = :id;\n", "victims-frozen"},
      {"WITH x AS (UPDATE app.victims SET note = 'x' RETURNING id) SELECT count(*) FROM x;\n",
       "no-unbounded-writes"},
      {"SELECT lo_import('/etc/hostname');\n", "no-escape-hatches"},
  };
  for (const std::string mode : {"simple", "extended", "prepared"}) {
    for (const auto& sc : scripts) {
      SCOPED_TRACE(mode + ": " + sc.script);
      auto r = pgbench(mode, sc.script, "1");
      EXPECT_NE(r.exit_code, 0) << r.out;
      EXPECT_NE(r.err.find("statement refused by gatehouse rule \"" + sc.rule + "\""),
                std::string::npos)
          << r.err;
      EXPECT_EQ(fingerprint(g.pg), before);
    }
    auto ok = pgbench(mode, "\\set id random(1, 3)\nSELECT note FROM app.victims WHERE id = :id;\n",
                      "20");
    EXPECT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_NE(ok.out.find("number of transactions actually processed: 20/20"), std::string::npos)
        << ok.out;
  }
}

// `gatehouse check` compiles every rule: a valid policy is reported with its rule count, a broken
// regex fails naming the file, the rule and Hyperscan's reason, and serving refuses it alike.
TEST(Guardrails, CheckValidatesRulesWithoutServing) {
  Guarded g;
  auto ok = g.gw.cli({"check", "-c", g.gw.config_file().string()});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("5 guardrail rules"), std::string::npos) << ok.out;

  std::ifstream in(g.gw.config_file());
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  text.replace(text.find("regex: 'pg_sleep'"), 17, "regex: 'pg_sleep('");
  text.replace(text.find("dir: trail"), 10,
               "dir: trail-of-broken");  // the running gateway owns its trail
  const auto broken = g.gw.dir() / "broken.yaml";
  std::ofstream(broken) << text;
  auto bad = g.gw.cli({"check", "-c", broken.string()});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find(broken.string() + ": connections[0].deny[4].regex (rule 'no-sleep'): "),
            std::string::npos)
      << bad.err;
  auto serve =
      run({gatehouse_binary(), "serve", "-c", broken.string()}, {}, std::chrono::seconds(30));
  EXPECT_NE(serve.exit_code, 0);
  EXPECT_NE(serve.err.find("(rule 'no-sleep')"), std::string::npos) << serve.err;
}

}  // namespace
}  // namespace gh::test
