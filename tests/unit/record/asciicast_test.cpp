// asciicast v2 rendering of a recorded SSH terminal channel: header, event lines, UTF-8 repair,
// channel choice.
#include "record/asciicast.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>

namespace gh::rec {
namespace {

constexpr uint64_t kStart = 1'700'000'000'000'000'000ull;

StoredEvent event(EventType type, uint64_t at_ms, std::vector<StoredField> fields) {
  return StoredEvent{type, 1, 0, kStart + at_ms * 1'000'000ull, std::move(fields)};
}

std::vector<nlohmann::json> lines_of(const std::string& cast) {
  std::vector<nlohmann::json> out;
  std::istringstream in(cast);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::vector<StoredEvent> session() {
  return {
      event(EventType::kSessionStart, 0, {{FieldTag::kProtocol, "ssh"}}),
      event(EventType::kStatement, 1, {{FieldTag::kChannel, "1"}, {FieldTag::kText, "uptime"}}),
      event(EventType::kTerminal, 10,
            {{FieldTag::kChannel, "2"}, {FieldTag::kRequest, "pty-req"}, {FieldTag::kTerminalType, "xterm"},
             {FieldTag::kColumns, "120"}, {FieldTag::kRows, "40"}}),
      event(EventType::kTerminal, 11, {{FieldTag::kChannel, "2"}, {FieldTag::kRequest, "shell"}}),
      event(EventType::kOutput, 20, {{FieldTag::kChannel, "1"}, {FieldTag::kStream, "out"}, {FieldTag::kText, "other"}}),
      event(EventType::kOutput, 1500,
            {{FieldTag::kChannel, "2"}, {FieldTag::kStream, "out"}, {FieldTag::kText, "$ \"q\"\\ caf\xc3"}}),
      event(EventType::kOutput, 1501, {{FieldTag::kChannel, "2"}, {FieldTag::kStream, "out"}, {FieldTag::kText, "\xa9\x1b[0m\r\n"}}),
      event(EventType::kInput, 2000, {{FieldTag::kChannel, "2"}, {FieldTag::kText, "ls\r"}}),
      event(EventType::kTerminal, 2500,
            {{FieldTag::kChannel, "2"}, {FieldTag::kRequest, "window-change"}, {FieldTag::kColumns, "100"},
             {FieldTag::kRows, "30"}}),
      event(EventType::kError, 3000,
            {{FieldTag::kChannel, "2"}, {FieldTag::kMessage, "gatehouse: line refused by rule 'r'"},
             {FieldTag::kRule, "r"}, {FieldTag::kOrigin, "gateway"}}),
      event(EventType::kOutput, 3100, {{FieldTag::kChannel, "2"}, {FieldTag::kStream, "err"}, {FieldTag::kText, "bad \xff byte"}}),
  };
}

TEST(Asciicast, HeaderFromThePtyRequestAndEventsRelativeToTheChannelsStart) {
  auto cast = format_asciicast(session());
  ASSERT_TRUE(cast) << cast.error().message;
  const auto lines = lines_of(*cast);
  ASSERT_EQ(lines.size(), 7u) << *cast;
  EXPECT_EQ(lines[0]["version"], 2);
  EXPECT_EQ(lines[0]["width"], 120);
  EXPECT_EQ(lines[0]["height"], 40);
  EXPECT_EQ(lines[0]["timestamp"], 1'700'000'000);
  EXPECT_EQ(lines[0]["env"]["TERM"], "xterm");
  // The UTF-8 sequence split between two records is joined; quotes and escapes survive JSON.
  EXPECT_EQ(lines[1], nlohmann::json::parse(R"([1.49, "o", "$ \"q\"\\ caf"])"));
  EXPECT_EQ(lines[2][1], "o");
  EXPECT_EQ(lines[2][2], "\xc3\xa9\x1b[0m\r\n");
  EXPECT_EQ(lines[3], nlohmann::json::parse(R"([1.99, "i", "ls\r"])"));
  EXPECT_EQ(lines[4], nlohmann::json::parse(R"([2.49, "r", "100x30"])"));
  EXPECT_EQ(lines[5][2], "\r\ngatehouse: line refused by rule 'r'\r\n");
  EXPECT_EQ(lines[6][2], "bad \xef\xbf\xbd byte");  // not UTF-8: U+FFFD
  EXPECT_EQ(cast->find("other"), std::string::npos);  // another channel's output
}

TEST(Asciicast, ChannelChosenOrMissing) {
  auto events = session();
  EXPECT_FALSE(format_asciicast(events, std::string("9")));
  // A shell without a pty: the default 80x24, no TERM.
  auto cast = format_asciicast(std::span(events).subspan(3));
  ASSERT_TRUE(cast);
  const auto header = lines_of(*cast)[0];
  EXPECT_EQ(header["width"], 80);
  EXPECT_FALSE(header.contains("env"));
  events.erase(events.begin() + 2, events.begin() + 4);
  EXPECT_FALSE(format_asciicast(events));  // no terminal at all
}

}  // namespace
}  // namespace gh::rec
