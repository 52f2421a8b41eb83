// LineGuard: what a caller typed, reconstructed as the host's line editor would see it, and the
// submissions of refused lines replaced; every case also split at every byte boundary.
#include <gtest/gtest.h>

#include "protocols/ssh/line_guard.hpp"

namespace gh::ssh {
namespace {

struct Outcome {
  std::string out;
  std::vector<std::string> refused;  // "line|rule"
  std::vector<std::string> judged;
  bool operator==(const Outcome&) const = default;
};

// Refuses lines containing "rm " (rule "no-rm"); records what it was asked about.
Outcome run(const std::vector<std::string_view>& chunks) {
  Outcome o;
  LineGuard guard(64);
  const LineGuard::Judge judge = [&o](std::string_view line) -> std::optional<std::string> {
    o.judged.emplace_back(line);
    if (line.find("rm ") != std::string_view::npos) return "no-rm";
    return std::nullopt;
  };
  std::vector<LineGuard::Refusal> refused;
  for (auto chunk : chunks) guard.filter(chunk, judge, o.out, refused);
  for (const auto& r : refused) o.refused.push_back(r.line + "|" + r.rule);
  return o;
}

// The outcome of `input` in one piece, checked equal for every split in two and byte by byte.
Outcome run_split(std::string_view input) {
  const Outcome whole = run({input});
  for (size_t cut = 1; cut < input.size(); ++cut) {
    EXPECT_EQ(run({input.substr(0, cut), input.substr(cut)}), whole) << "split at " << cut;
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < input.size(); ++i) bytes.push_back(input.substr(i, 1));
  EXPECT_EQ(run(bytes), whole) << "byte by byte";
  return whole;
}

constexpr char kKill = LineGuard::kKillLine;

TEST(LineGuard, PassesAllowedLinesUnchangedAndJudgesEachSubmission) {
  const Outcome o = run_split("ls -l\recho hi\n");
  EXPECT_EQ(o.out, "ls -l\recho hi\n");
  EXPECT_EQ(o.judged, (std::vector<std::string>{"ls -l", "echo hi"}));
  EXPECT_TRUE(o.refused.empty());
}

TEST(LineGuard, RefusedLineLosesItsSubmissionToKillLine) {
  const Outcome o = run_split("rm -rf /tmp/x\rls\r");
  EXPECT_EQ(o.out, std::string("rm -rf /tmp/x") + kKill + "ls\r");
  EXPECT_EQ(o.refused, (std::vector<std::string>{"rm -rf /tmp/x|no-rm"}));
}

TEST(LineGuard, EmptyLinesAreNotJudged) {
  const Outcome o = run_split("\r\n\r");
  EXPECT_EQ(o.out, "\r\n\r");
  EXPECT_TRUE(o.judged.empty());
}

TEST(LineGuard, FollowsBackspaceDeleteAndUtf8) {
  // "rmx" then backspace, then " a": "rm a" is what the host runs.
  EXPECT_EQ(run_split("rmx\x7f a\r").refused, (std::vector<std::string>{"rm a|no-rm"}));
  EXPECT_EQ(run_split("rmx\b a\r").refused, (std::vector<std::string>{"rm a|no-rm"}));
  // "é" (two bytes) erased as one character.
  EXPECT_EQ(run_split("caf\xc3\xa9\x7f" "e\r").judged, (std::vector<std::string>{"cafe"}));
  // Erasing more than was typed leaves an empty line.
  EXPECT_EQ(run_split("a\x7f\x7f\x7f" "rm b\r").refused, (std::vector<std::string>{"rm b|no-rm"}));
}

TEST(LineGuard, KillLineWordEraseAndInterruptClear) {
  EXPECT_EQ(run_split("echo rm x\x15ls\r").judged, (std::vector<std::string>{"ls"}));
  EXPECT_EQ(run_split("echo rm x\x03ls\r").judged, (std::vector<std::string>{"ls"}));
  // Ctrl-W takes the last word and the blanks before it.
  EXPECT_EQ(run_split("rm  junk\x17\x17 echo x\r").judged, (std::vector<std::string>{" echo x"}));
  EXPECT_EQ(run_split("echo a\x17rm b\r").refused, (std::vector<std::string>{"echo rm b|no-rm"}));
}

TEST(LineGuard, EscapeSequencesAndTabGiveUpUntilTheNextSubmission) {
  // An arrow key: the line on the host is unknown, so it passes unjudged (the documented limit).
  Outcome o = run_split("rm x\x1b[D\r");
  EXPECT_TRUE(o.judged.empty());
  EXPECT_EQ(o.out, "rm x\x1b[D\r");
  o = run_split("rm\tx\rrm y\r");
  EXPECT_EQ(o.judged, (std::vector<std::string>{"rm y"}));  // the next line is followed again
  // Ctrl-C or Ctrl-U makes the line known (empty) again.
  o = run_split("ls\x1b[A\x03rm z\r");
  EXPECT_EQ(o.refused, (std::vector<std::string>{"rm z|no-rm"}));
}

TEST(LineGuard, BracketedPasteIsTextAndEachPastedLineIsJudged) {
  // Pasted line breaks do not submit (readline inserts them); Enter submits the whole.
  Outcome o = run_split("\x1b[200~echo a\rrm b\x1b[201~\r");
  EXPECT_EQ(o.refused, (std::vector<std::string>{"echo a\nrm b|no-rm"}));
  EXPECT_EQ(o.out, std::string("\x1b[200~echo a\rrm b\x1b[201~") + kKill);
  // Escape bytes inside a paste are text too.
  o = run_split("\x1b[200~rm \x1b[Dq\x1b[201~\n");
  EXPECT_EQ(o.refused.size(), 1u);
  // An end marker without a start changes nothing... but is an unknown escape: given up.
  o = run_split("ls\x1b[201~\r");
  EXPECT_TRUE(o.judged.empty());
}

TEST(LineGuard, OverlongLinePassesUnjudged) {
  const std::string input = "rm " + std::string(100, 'a') + "\rrm b\r";
  const Outcome o = run_split(input);
  EXPECT_EQ(o.refused, (std::vector<std::string>{"rm b|no-rm"}));
}

TEST(LineGuard, LineViewTracksState) {
  LineGuard guard;
  std::string out;
  std::vector<LineGuard::Refusal> refused;
  const LineGuard::Judge never = [](std::string_view) { return std::nullopt; };
  guard.filter("ab", never, out, refused);
  ASSERT_TRUE(guard.line());
  EXPECT_EQ(*guard.line(), "ab");
  guard.filter("\t", never, out, refused);
  EXPECT_FALSE(guard.line());
  guard.filter("\r", never, out, refused);
  ASSERT_TRUE(guard.line());
  EXPECT_EQ(*guard.line(), "");
}

}  // namespace
}  // namespace gh::ssh
