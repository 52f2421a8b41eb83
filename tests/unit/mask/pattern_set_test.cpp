#include "mask/pattern_set.hpp"

#include <gtest/gtest.h>

namespace gh::mask {
namespace {

TEST(PatternSet, ReportsEveryPatternWithLeftmostOffsets) {
  auto set = PatternSet::compile({{"email", R"([a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,})", true},
                                  {"aws-key-id", R"(AKIA[0-9A-Z]{16})", false}});
  ASSERT_TRUE(set) << set.error().message;
  auto scratch = set->make_scratch();
  ASSERT_TRUE(scratch);
  const std::string text = "contact Alice@Example.com key AKIAABCDEFGHIJKLMNOP end";
  std::vector<Match> matches;
  ASSERT_TRUE(set->scan(text, *scratch, matches));
  bool email = false;
  bool key = false;
  for (const Match& m : matches) {
    const std::string_view hit = std::string_view(text).substr(m.from, m.to - m.from);
    if (set->pattern(m.pattern).name == "email" && hit == "Alice@Example.com") email = true;
    if (set->pattern(m.pattern).name == "aws-key-id" && hit == "AKIAABCDEFGHIJKLMNOP") key = true;
  }
  EXPECT_TRUE(email);
  EXPECT_TRUE(key);

  matches.clear();
  ASSERT_TRUE(set->scan("nothing to see", *scratch, matches));
  EXPECT_TRUE(matches.empty());
}

TEST(PatternSet, InvalidPatternNamesTheRule) {
  auto set = PatternSet::compile({{"fine", "abc"}, {"broken-rule", "(unclosed"}});
  ASSERT_FALSE(set);
  EXPECT_NE(set.error().message.find("broken-rule"), std::string::npos) << set.error().message;
}

TEST(Luhn, AcceptsValidCardNumbersOnly) {
  EXPECT_TRUE(luhn_valid("4111111111111111"));
  EXPECT_TRUE(luhn_valid("4111 1111 1111 1111"));
  EXPECT_TRUE(luhn_valid("5500-0000-0000-0004"));
  EXPECT_TRUE(luhn_valid("378282246310005"));    // 15-digit Amex test number
  EXPECT_FALSE(luhn_valid("4111111111111112"));  // one digit off
  EXPECT_FALSE(luhn_valid("41111111111"));       // too short
  EXPECT_FALSE(luhn_valid("4111x11111111111"));
  EXPECT_FALSE(luhn_valid(""));
}

}  // namespace
}  // namespace gh::mask
