// What the trail keeps of results and executions on a real PostgreSQL, read back through
// `gatehouse replay`: result rows of a connection without mask rules (psql), the result budget
// cutting them, each Execute of a prepared statement with its parameters (pgbench -M prepared),
// and parameter values cut, shown as hex and masked (libpq with text, binary and NULL values).
#include <gtest/gtest.h>

#include <fstream>

#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/pq.hpp"
#include "tests/integration/support/trail_events.hpp"

namespace gh::test {
namespace {

class Rows : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pg_ = new PostgresServer();
    auto r = pg_->psql(
        "CREATE TABLE items (id int PRIMARY KEY, name text); GRANT ALL ON items TO PUBLIC; "
        "INSERT INTO items VALUES (1, 'alpha'), (2, 'beta'), (3, NULL), (4, 'delta'), (5, 'eps');"
        "CREATE TABLE notes (id int, body text, blob bytea, extra text); "
        "GRANT ALL ON notes TO PUBLIC");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
  }

  // The replayed sessions of the trail whose events include one of `type`.
  static std::vector<nlohmann::json> replays_with(const Gateway& gw, const std::string& type) {
    std::vector<nlohmann::json> out;
    for (const auto& s : trail_sessions(gw)) {
      auto replay = trail_replay(gw, s["session_id"].get<std::string>());
      if (!events_of_type(replay, type).empty()) out.push_back(std::move(replay));
    }
    return out;
  }

  // The recorded unmasked rows of a replay, in order: each result_row record holds one or more.
  static std::vector<std::string> row_texts(const nlohmann::json& replay) {
    std::vector<std::string> texts;
    for (const auto& record : events_of_type(replay, "result_row")) {
      for (std::string& text : event_values(record, "text")) texts.push_back(std::move(text));
    }
    return texts;
  }

  static PostgresServer* pg_;
};
PostgresServer* Rows::pg_ = nullptr;

TEST_F(Rows, UnmaskedConnectionRecordsResultRowsAsSent) {
  Gateway gw(*pg_);
  const std::string token = gw.token("alice", {"devs"});
  auto r = gw.psql(token, {"-A", "-t", "-c", "SELECT id, name FROM items ORDER BY id"});
  ASSERT_EQ(r.exit_code, 0) << r.err << gw.log();
  EXPECT_EQ(r.out, "1|alpha\n2|beta\n3|\n4|delta\n5|eps\n");
  ASSERT_EQ(gw.stop(), 0) << gw.log();

  const auto replays = replays_with(gw, "result_row");
  ASSERT_EQ(replays.size(), 1u);
  const auto records = events_of_type(replays[0], "result_row");
  ASSERT_EQ(records.size(), 1u) << "the rows of a small result share one record";
  EXPECT_EQ(event_field(records[0], "result_columns"), "id\tname") << "it names the columns";
  EXPECT_EQ(row_texts(replays[0]),
            (std::vector<std::string>{"1\talpha", "2\tbeta", "3\tNULL", "4\tdelta", "5\teps"}));
  EXPECT_TRUE(events_of_type(replays[0], "masked_row").empty());
  const auto completions = events_of_type(replays[0], "completion");
  ASSERT_EQ(completions.size(), 1u);
  EXPECT_EQ(event_field(completions[0], "tag"), "SELECT 5");
  EXPECT_EQ(event_field(completions[0], "result_rows"), "5");
  EXPECT_EQ(event_field(completions[0], "result_rows_cut"), "") << "nothing was cut";

  // The text replay shows the rows as a table under their column names.
  auto text = gw.cli({"replay", "--dir", gw.trail_dir().string(),
                      replays[0]["session_id"].get<std::string>()});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("5 recorded rows"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("id | name"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("3  | NULL"), std::string::npos) << text.out;
}

TEST_F(Rows, BudgetCutsRowsOfAnUnmaskedConnection) {
  GatewayOptions options;
  // Each row is recorded as "<n>\tvalue-<n>": 10 to 14 bytes, so 10 to 20 rows fit in 200.
  options.recording_extra = "  statement_result_bytes_max: 200\n";
  Gateway gw(*pg_, options);
  const std::string token = gw.token("alice", {"devs"});
  auto r = gw.psql(token, {"-A", "-t", "-c",
                           "SELECT i, 'value-' || i FROM generate_series(1, 300) i"});
  ASSERT_EQ(r.exit_code, 0) << r.err << gw.log();
  size_t lines = 0;
  for (char ch : r.out) lines += ch == '\n';
  EXPECT_EQ(lines, 300u) << "the client gets every row whatever the budget";
  ASSERT_EQ(gw.stop(), 0) << gw.log();

  const auto replays = replays_with(gw, "result_row");
  ASSERT_EQ(replays.size(), 1u);
  const auto rows = row_texts(replays[0]);
  const auto completions = events_of_type(replays[0], "completion");
  ASSERT_EQ(completions.size(), 1u);
  const auto& done = completions[0];
  EXPECT_EQ(event_field(done, "tag"), "SELECT 300");
  EXPECT_EQ(event_field(done, "result_rows"), "300");
  const uint64_t recorded = std::stoull(event_field(done, "result_rows_recorded"));
  EXPECT_EQ(recorded, rows.size());
  EXPECT_GE(recorded, 10u);
  EXPECT_LE(recorded, 20u);
  EXPECT_EQ(event_field(done, "result_rows_cut"), std::to_string(300 - recorded));
  uint64_t bytes = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    // The recorded rows are the first ones, in order.
    const std::string n = std::to_string(i + 1);
    EXPECT_EQ(rows[i], n + "\tvalue-" + n);
    bytes += rows[i].size();
  }
  EXPECT_LE(bytes, 200u);
}

TEST_F(Rows, ALargeResultIsRecordedInBoundedBatchesInOrder) {
  Gateway gw(*pg_);
  const std::string token = gw.token("alice", {"devs"});
  auto r = gw.psql(token, {"-A", "-t", "-c",
                           "SELECT i FROM generate_series(1, 1000) i; SELECT 'second'"});
  ASSERT_EQ(r.exit_code, 0) << r.err << gw.log();
  ASSERT_EQ(gw.stop(), 0) << gw.log();

  const auto replays = replays_with(gw, "result_row");
  ASSERT_EQ(replays.size(), 1u);
  // 1000 rows of 1-4 bytes fit the 64 KiB budget: all are kept, at most 256 to a record, and the
  // second statement's row comes after the first's completion, under its own column name.
  const auto rows = row_texts(replays[0]);
  ASSERT_EQ(rows.size(), 1001u);
  for (size_t i = 0; i < 1000; ++i) ASSERT_EQ(rows[i], std::to_string(i + 1)) << i;
  EXPECT_EQ(rows[1000], "second");
  const auto records = events_of_type(replays[0], "result_row");
  EXPECT_EQ(records.size(), 5u) << "4 of at most 256 rows for the first result, 1 for the second";
  std::vector<std::string> order;
  for (const auto& e : replays[0]["events"]) {
    const std::string type = e["type"].get<std::string>();
    if (type == "result_row" || type == "completion") order.push_back(type);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"result_row", "result_row", "result_row", "result_row",
                                             "completion", "result_row", "completion"}));
  EXPECT_EQ(event_field(records[0], "result_columns"), "i");
  EXPECT_EQ(event_field(records[1], "result_columns"), "") << "only the first batch names them";
  EXPECT_EQ(event_field(records[4], "result_columns"), "?column?");
}

TEST_F(Rows, RowsNotRecordedAreStillCountedExactly) {
  GatewayOptions options;
  options.recording_extra = "  statement_result_bytes_max: 0\n";  // rows pass in runs, unread
  Gateway gw(*pg_, options);
  const std::string token = gw.token("alice", {"devs"});
  auto r = gw.psql(token, {"-A", "-t", "-c", "SELECT i FROM generate_series(1, 5000) i"});
  ASSERT_EQ(r.exit_code, 0) << r.err << gw.log();
  size_t lines = 0;
  for (char ch : r.out) lines += ch == '\n';
  EXPECT_EQ(lines, 5000u);
  ASSERT_EQ(gw.stop(), 0) << gw.log();

  const auto replays = replays_with(gw, "completion");
  ASSERT_EQ(replays.size(), 1u);
  EXPECT_TRUE(events_of_type(replays[0], "result_row").empty());
  const auto completions = events_of_type(replays[0], "completion");
  ASSERT_EQ(completions.size(), 1u);
  EXPECT_EQ(event_field(completions[0], "result_rows"), "5000");
  // Each DataRow of one int4 in text: type, length, column count, value length (11 bytes) and
  // its digits: 9 x 1 + 90 x 2 + 900 x 3 + 4001 x 4 = 18 893 digits.
  EXPECT_EQ(event_field(completions[0], "result_bytes"), std::to_string(5000 * 11 + 18893));
}

TEST_F(Rows, EachPreparedExecutionIsRecordedWithItsParameter) {
  Gateway gw(*pg_);
  const std::string token = gw.token("bench-bot", {"devs"});
  const auto script = gw.dir() / "lookup.sql";
  std::ofstream(script) << "\\set wanted random(1, 5)\nSELECT name FROM items WHERE id = :wanted;\n";
  auto r = run({"pgbench", "-h", "127.0.0.1", "-p", std::to_string(gw.port()), "-U", "alice", "-n",
                "-M", "prepared", "-t", "4", "-f", script.string(), "appdb"},
               {{"PGPASSWORD", token}, {"PGSSLMODE", "disable"}, {"PGCONNECT_TIMEOUT", "10"}},
               std::chrono::seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << gw.log();
  ASSERT_EQ(gw.stop(), 0) << gw.log();

  const auto replays = replays_with(gw, "execute");
  ASSERT_EQ(replays.size(), 1u);
  const auto& events = replays[0]["events"];
  const std::vector<std::string> names = {"alpha", "beta", "NULL", "delta", "eps"};
  size_t executes = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i]["type"] != "execute") continue;
    ++executes;
    const auto& e = events[i];
    EXPECT_EQ(event_field(e, "text"), "SELECT name FROM items WHERE id = $1;");
    EXPECT_FALSE(event_field(e, "statement_name").empty()) << "pgbench names its statements";
    const std::string value = event_field(e, "parameter");
    ASSERT_EQ(value.size(), 1u) << e.dump();
    ASSERT_GE(value[0], '1');
    ASSERT_LE(value[0], '5');
    EXPECT_EQ(event_field(e, "parameter_sizes"), "1");
    // Its result follows: the row for that id, then the completion.
    ASSERT_LT(i + 2, events.size());
    EXPECT_EQ(events[i + 1]["type"], "result_row");
    EXPECT_EQ(event_field(events[i + 1], "text"), names[value[0] - '1']);
    EXPECT_EQ(events[i + 2]["type"], "completion");
    EXPECT_EQ(event_field(events[i + 2], "tag"), "SELECT 1");
  }
  EXPECT_EQ(executes, 4u) << "one execute record per transaction";
}

TEST_F(Rows, ParametersAreCutShownAsHexAndMasked) {
  GatewayOptions options;
  options.connections[0].extra =
      "    mask:\n      - name: cards\n        detect: card\n        style: keep_last\n        keep: 4\n";
  Gateway gw(*pg_, options);
  const std::string token = gw.token("alice", {"devs"});
  PgConn conn = pq_connect(gw.conninfo(), token);
  ASSERT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get()) << gw.log();
  PGresult* prepared = PQprepare(conn.get(), "add_note",
                                 "INSERT INTO notes VALUES ($1, $2, $3, $4)", 4, nullptr);
  ASSERT_EQ(PQresultStatus(prepared), PGRES_COMMAND_OK) << PQerrorMessage(conn.get());
  PQclear(prepared);
  const std::string id = "7";
  // A card number straddling the 64-byte cut: masked whole before the cut.
  const std::string body = std::string(55, 'x') + " 4111 1111 1111 1111 " + std::string(200, 'y');
  const std::string blob("\x00\x01\xfe\xff", 4);
  const char* values[] = {id.c_str(), body.c_str(), blob.data(), nullptr};
  const int lengths[] = {0, 0, int(blob.size()), 0};
  const int formats[] = {0, 0, 1, 0};
  PGresult* ran = PQexecPrepared(conn.get(), "add_note", 4, values, lengths, formats, 0);
  ASSERT_EQ(PQresultStatus(ran), PGRES_COMMAND_OK) << PQerrorMessage(conn.get());
  PQclear(ran);
  conn.reset();
  ASSERT_EQ(gw.stop(), 0) << gw.log();

  const auto replays = replays_with(gw, "execute");
  ASSERT_EQ(replays.size(), 1u);
  const auto executes = events_of_type(replays[0], "execute");
  ASSERT_EQ(executes.size(), 1u);
  const auto& e = executes[0];
  EXPECT_EQ(event_field(e, "text"), "INSERT INTO notes VALUES ($1, $2, $3, $4)");
  EXPECT_EQ(event_field(e, "statement_name"), "add_note");
  const auto& parameters = e["fields"]["parameter"];
  ASSERT_TRUE(parameters.is_array()) << e.dump();
  ASSERT_EQ(parameters.size(), 4u) << e.dump();
  EXPECT_EQ(parameters[0], "7");
  const std::string shown = parameters[1].get<std::string>();
  EXPECT_EQ(shown.size(), 64u) << "cut at 64 bytes";
  EXPECT_EQ(shown.find("4111 1111"), std::string::npos) << "the card number never reaches the trail";
  EXPECT_NE(shown.find("**** **"), std::string::npos) << shown;
  EXPECT_EQ(parameters[2], "\\x0001feff") << "binary values as hex";
  EXPECT_EQ(parameters[3], "") << "NULL";
  EXPECT_EQ(event_field(e, "parameter_sizes"), "1," + std::to_string(body.size()) + ",4,-1");
  EXPECT_EQ(event_field(e, "parameter_formats"), "0,0,1,0");

  auto text = gw.cli({"replay", "--dir", gw.trail_dir().string(),
                      replays[0]["session_id"].get<std::string>()});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("(statement add_note) [$1='7', $2='xxx"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("… [276 bytes], $3='\\x0001feff', $4=NULL]"), std::string::npos)
      << text.out;
}

}  // namespace
}  // namespace gh::test
