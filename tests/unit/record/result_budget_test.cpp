// The per-statement result budget: which rows' values are recorded, the full sizes kept beyond
// it, and how replay shows a cut.
#include <gtest/gtest.h>

#include "record/format.hpp"
#include "record/result_budget.hpp"
#include "record_test_support.hpp"

namespace gh::rec {
namespace {

TEST(ResultBudget, RecordsAPrefixOfRowsWithinTheBudgetAndCountsEveryRow) {
  struct Case {
    uint64_t budget;
    std::vector<uint64_t> row_values;  // recordable value bytes of each row
    uint64_t recorded, cut;
  } cases[] = {
      {64, {}, 0, 0},
      {64, {10, 20, 34}, 3, 0},    // exactly the budget
      {64, {10, 20, 35}, 2, 1},    // one byte over
      {64, {70, 1, 1}, 0, 3},      // a first row larger than the budget cuts all
      {64, {40, 40, 1}, 1, 2},     // a smaller row after the cut is not recorded either
      {0, {1, 1}, 0, 2},           // budget 0: sizes only
      {64, {0, 0, 0}, 3, 0},       // empty rows cost nothing
  };
  for (const Case& c : cases) {
    ResultBudget budget(c.budget);
    uint64_t admitted = 0;
    bool cut_seen = false;
    for (uint64_t v : c.row_values) {
      budget.count_row(v + 11);
      const bool ok = budget.admit(v);
      EXPECT_FALSE(ok && cut_seen) << "recorded rows must be a prefix";
      cut_seen |= !ok;
      admitted += ok;
    }
    const ResultBudget::Summary s = budget.take();
    EXPECT_EQ(s.rows, c.row_values.size());
    uint64_t wire = 0;
    for (uint64_t v : c.row_values) wire += v + 11;
    EXPECT_EQ(s.bytes, wire);
    EXPECT_EQ(s.recorded_rows, c.recorded) << "budget " << c.budget;
    EXPECT_EQ(s.rows_cut, c.cut) << "budget " << c.budget;
    EXPECT_EQ(admitted, c.recorded);
  }
}

TEST(ResultBudget, EachStatementStartsAfresh) {
  ResultBudget budget(10);
  budget.count_row(20);
  EXPECT_FALSE(budget.admit(11));
  EXPECT_EQ(budget.take().rows_cut, 1u);
  budget.count_row(20);
  EXPECT_TRUE(budget.admit(10)) << "the next statement has the whole budget again";
  const ResultBudget::Summary s = budget.take();
  EXPECT_EQ(s.rows, 1u);
  EXPECT_EQ(s.rows_cut, 0u);
}

TEST(ResultBudget, ReplayShowsTheFullSizesAndThatRowsWereCut) {
  const uint64_t t = testing::kBaseTimeNs;
  std::vector<StoredEvent> events = {
      {EventType::kSessionStart, 7, 0, t, {{FieldTag::kChainMember, "alice"}}},
      {EventType::kStatement, 7, 1, t + 1, {{FieldTag::kText, "SELECT card FROM cards"}}},
      {EventType::kMaskedRow, 7, 2, t + 2, {{FieldTag::kText, "************1111"}}},
      {EventType::kCompletion,
       7,
       3,
       t + 3,
       {{FieldTag::kTag, "SELECT 500"},
        {FieldTag::kResultRows, "500"},
        {FieldTag::kResultBytes, "21000"},
        {FieldTag::kResultRowsRecorded, "1"},
        {FieldTag::kResultRowsCut, "499"}}},
      {EventType::kCompletion,
       7,
       4,
       t + 4,
       {{FieldTag::kTag, "SELECT 2"}, {FieldTag::kResultRows, "2"}, {FieldTag::kResultBytes, "40"}}},
  };
  const std::string replay = format_replay(events);
  EXPECT_NE(replay.find("completed SELECT 500 (500 rows, 21000 bytes; 1 rows recorded, 499 more "
                        "cut at the statement's result budget)"),
            std::string::npos)
      << replay;
  EXPECT_NE(replay.find("completed SELECT 2 (2 rows, 40 bytes)"), std::string::npos) << replay;
  EXPECT_EQ(field_tag_name(FieldTag::kResultRowsCut), "result_rows_cut");
}

TEST(ResultBudget, ChargedBytesLeaveLessForRows) {
  ResultBudget budget(100);
  EXPECT_EQ(budget.bytes_left(), 100u);
  budget.charge(60);  // an Execute's recorded parameters
  EXPECT_EQ(budget.bytes_left(), 40u);
  budget.count_row(50);
  EXPECT_TRUE(budget.admit(40));
  EXPECT_EQ(budget.bytes_left(), 0u);
  budget.count_row(8);
  EXPECT_FALSE(budget.admit(1));
  EXPECT_EQ(budget.bytes_left(), 0u) << "nothing after a cut";
  budget.charge(1000);
  EXPECT_EQ(budget.bytes_left(), 0u) << "a charge never overflows the budget";
  const ResultBudget::Summary s = budget.take();
  EXPECT_EQ(s.recorded_rows, 1u);
  EXPECT_EQ(s.rows_cut, 1u);
  EXPECT_EQ(budget.bytes_left(), 100u);
}

TEST(ResultBudget, ReplayShowsRecordedRowsAsATableUnderTheirColumns) {
  const uint64_t t = testing::kBaseTimeNs;
  const std::string wide(60, 'w');
  std::vector<StoredEvent> events = {
      {EventType::kSessionStart, 7, 0, t, {{FieldTag::kChainMember, "alice"}}},
      {EventType::kStatement, 7, 1, t + 1, {{FieldTag::kText, "SELECT id, name FROM t"}}},
      {EventType::kResultRow, 7, 2, t + 2,
       {{FieldTag::kText, "1\talpha"}, {FieldTag::kResultColumns, "id\tname"}}},
      {EventType::kMaskedRow, 7, 3, t + 3,
       {{FieldTag::kText, "22\t****1111"}, {FieldTag::kRule, "cards"}}},
      {EventType::kResultRow, 7, 4, t + 4, {{FieldTag::kText, "3\t" + wide}}},
      {EventType::kCompletion, 7, 5, t + 5, {{FieldTag::kTag, "SELECT 3"}}},
      {EventType::kResultRow, 7, 6, t + 6, {{FieldTag::kText, "x"}, {FieldTag::kResultColumns, "one"}}},
  };
  const std::string replay = format_replay(events);
  EXPECT_NE(replay.find("3 recorded rows\n"
                        "           id | name\n"
                        "           ---+-" + std::string(40, '-') + "\n"
                        "           1  | alpha\n"
                        "           22 | ****1111   (masked: cards)\n"
                        "           3  | " + std::string(39, 'w') + "…\n"),
            std::string::npos)
      << replay;
  EXPECT_NE(replay.find("1 recorded row\n           one\n           ---\n           x\n"),
            std::string::npos)
      << replay;
}

TEST(ResultBudget, ReplayShowsEachExecuteWithItsParameters) {
  const uint64_t t = testing::kBaseTimeNs;
  std::vector<StoredEvent> events = {
      {EventType::kSessionStart, 7, 0, t, {{FieldTag::kChainMember, "alice"}}},
      {EventType::kExecute, 7, 1, t + 1,
       {{FieldTag::kText, "SELECT $1, $2, $3, $4"},
        {FieldTag::kStatementName, "s1"},
        {FieldTag::kPortal, "p"},
        {FieldTag::kParameter, "42"},
        {FieldTag::kParameter, "abc"},
        {FieldTag::kParameter, "\\x00ff"},
        {FieldTag::kParameterSizes, "2,500,2,-1,9000"},
        {FieldTag::kParameterFormats, "0,0,1,0,0"}}},
  };
  const std::string replay = format_replay(events);
  EXPECT_NE(replay.find("execute SELECT $1, $2, $3, $4 (statement s1, portal p) [$1='42', "
                        "$2='abc'… [500 bytes], $3='\\x00ff', $4=NULL, $5=[9000 bytes, not "
                        "recorded]]"),
            std::string::npos)
      << replay;
  EXPECT_EQ(event_type_name(EventType::kExecute), "execute");
  EXPECT_EQ(event_type_name(EventType::kResultRow), "result_row");
  EXPECT_EQ(field_tag_name(FieldTag::kParameterSizes), "parameter_sizes");
}

}  // namespace
}  // namespace gh::rec
