// recording.statement_result_bytes_max against a real PostgreSQL through psql: the client gets
// every (masked) row, the trail holds the masked rows up to the budget and, on the statement's
// completion record, the full row count and bytes with how many rows were cut.
#include <gtest/gtest.h>

#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/trail_events.hpp"

namespace gh::test {
namespace {

TEST(ResultBudget, RowsPastTheBudgetAreCountedNotRecorded) {
  PostgresServer pg;
  ASSERT_EQ(pg.psql("CREATE TABLE cards (id int, card text); GRANT ALL ON cards TO PUBLIC; "
                    "INSERT INTO cards SELECT i, '4111 1111 1111 1111' FROM generate_series(1, 200) i")
                .exit_code,
            0);
  GatewayOptions options;
  options.connections[0].extra =
      "    mask:\n      - name: cards\n        detect: card\n        style: keep_last\n        keep: 4\n";
  // Each masked row is recorded as "<id>\t**** **** **** 1111": about 20 bytes; 10 rows fit.
  options.recording_extra = "  statement_result_bytes_max: 200\n";
  Gateway gw(pg, options);
  const std::string token = gw.token("alice", {"devs"});
  const std::string sql = "SELECT id, card FROM cards ORDER BY id";
  auto r = gw.psql(token, {"-A", "-t", "-c", sql});
  ASSERT_EQ(r.exit_code, 0) << r.err << gw.log();
  size_t lines = 0;
  for (char ch : r.out) lines += ch == '\n';
  EXPECT_EQ(lines, 200u) << "the client gets every row whatever the budget";
  EXPECT_EQ(r.out.find("4111 1111 1111 1111"), std::string::npos);
  ASSERT_EQ(gw.stop(), 0) << gw.log();

  bool checked = false;
  for (const auto& s : trail_sessions(gw)) {
    auto replay = trail_replay(gw, s["session_id"].get<std::string>());
    const auto completions = events_of_type(replay, "completion");
    const auto rows = events_of_type(replay, "masked_row");
    for (const auto& c : completions) {
      if (event_field(c, "tag") != "SELECT 200") continue;
      checked = true;
      EXPECT_EQ(event_field(c, "result_rows"), "200");
      EXPECT_GT(std::stoull(event_field(c, "result_bytes")), 200u * 20);
      const uint64_t recorded = std::stoull(event_field(c, "result_rows_recorded"));
      EXPECT_EQ(recorded, rows.size());
      EXPECT_GE(recorded, 5u);
      EXPECT_LE(recorded, 10u);
      EXPECT_EQ(event_field(c, "result_rows_cut"), std::to_string(200 - recorded));
      // The recorded rows are the first ones, masked.
      ASSERT_FALSE(rows.empty());
      EXPECT_EQ(event_field(rows[0], "text"), "1\t**** **** **** 1111");
    }
  }
  EXPECT_TRUE(checked) << "no completion record for the statement";
  auto text = gw.cli({"replay", "--dir", gw.trail_dir().string(),
                      trail_sessions(gw)[0]["session_id"].get<std::string>()});
  EXPECT_NE(text.out.find("cut at the statement's result budget"), std::string::npos) << text.out;
}

}  // namespace
}  // namespace gh::test
