// The extended protocol as the trail follows it: Bind summaries read from every prefix of a
// frame, and which text a portal runs when Parses succeed, fail or are closed, across cycles.
#include <gtest/gtest.h>

#include <string>

#include "protocols/postgres/codec/encoder.hpp"
#include "protocols/postgres/extended.hpp"

namespace gh::pg {
namespace {

Bytes bytes_of(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

// A Bind frame built by hand (Message Formats): portal, statement, formats, values, results.
std::string bind_frame(std::string_view portal, std::string_view statement,
                       const std::vector<int16_t>& formats,
                       const std::vector<std::optional<std::string>>& values) {
  std::string body;
  const auto i16 = [&](int16_t v) {
    body += char((v >> 8) & 0xff);
    body += char(v & 0xff);
  };
  const auto i32 = [&](int32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) body += char((v >> shift) & 0xff);
  };
  body += portal;
  body += '\0';
  body += statement;
  body += '\0';
  i16(int16_t(formats.size()));
  for (int16_t f : formats) i16(f);
  i16(int16_t(values.size()));
  for (const auto& v : values) {
    i32(v ? int32_t(v->size()) : -1);
    if (v) body += *v;
  }
  i16(0);
  std::string frame = "B";
  const uint32_t length = uint32_t(body.size() + 4);
  for (int shift = 24; shift >= 0; shift -= 8) frame += char((length >> shift) & 0xff);
  return frame + body;
}

TEST(SummarizeBind, ReadsNamesFormatsSizesAndHeads) {
  const std::string frame =
      bind_frame("p1", "s1", {0, 1, 0}, {std::string("42"), std::string("\x00\x01", 2), std::nullopt});
  const auto s = summarize_bind(bytes_of(frame), 1);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->portal, "p1");
  EXPECT_EQ(s->statement, "s1");
  ASSERT_EQ(s->parameter_count, 3);
  ASSERT_EQ(s->parameters.size(), 3u);
  EXPECT_EQ(s->parameters[0].size, 2);
  EXPECT_EQ(s->parameters[0].head, "4") << "cut at the window asked for";
  EXPECT_EQ(s->parameters[1].format, 1);
  EXPECT_EQ(s->parameters[2].size, -1);
}

TEST(SummarizeBind, OneFormatCodeAppliesToEveryParameter) {
  const std::string frame = bind_frame("", "", {1}, {std::string("a"), std::string("b")});
  const auto s = summarize_bind(bytes_of(frame), 8);
  ASSERT_TRUE(s.has_value());
  ASSERT_EQ(s->parameters.size(), 2u);
  EXPECT_EQ(s->parameters[0].format, 1);
  EXPECT_EQ(s->parameters[1].format, 1);
}

TEST(SummarizeBind, EveryPrefixGivesWhatItHoldsAndNeverMore) {
  const std::string big(300, 'v');
  const std::string frame =
      bind_frame("", "stmt", {}, {std::string("one"), big, std::nullopt, std::string("last")});
  const auto whole = summarize_bind(bytes_of(frame), 16);
  ASSERT_TRUE(whole.has_value());
  ASSERT_EQ(whole->parameters.size(), 4u);
  for (size_t n = 0; n <= frame.size(); ++n) {
    // A copy of exactly n bytes, so that reading past it is caught by the sanitizers.
    const std::string prefix = frame.substr(0, n);
    const auto s = summarize_bind(bytes_of(prefix), 16);
    if (!s) {
      // Only while the names and counts are not all there.
      EXPECT_LT(n, 5u + 1 + 5 + 2 + 2) << n;
      continue;
    }
    EXPECT_EQ(s->statement, "stmt");
    EXPECT_EQ(s->parameter_count, 4);
    ASSERT_LE(s->parameters.size(), 4u);
    for (size_t i = 0; i < s->parameters.size(); ++i) {
      const BindParameter& p = s->parameters[i];
      EXPECT_EQ(p.size, whole->parameters[i].size) << n << " " << i;
      EXPECT_TRUE(whole->parameters[i].head.starts_with(p.head)) << n << " " << i;
      if (!p.head.empty()) {
        EXPECT_GE(p.head.data(), prefix.data());
        EXPECT_LE(p.head.data() + p.head.size(), prefix.data() + prefix.size());
      }
    }
    if (n == frame.size()) {
      EXPECT_EQ(s->parameters.size(), 4u);
    }
  }
}

TEST(SummarizeBind, RefusesMalformedFrames) {
  EXPECT_FALSE(summarize_bind(bytes_of(std::string("Q\0\0\0\4", 5)), 8).has_value());
  // Two format codes for three parameters breaks the 0 / 1 / n rule.
  const std::string frame =
      bind_frame("", "", {0, 0}, {std::string("a"), std::string("b"), std::string("c")});
  EXPECT_FALSE(summarize_bind(bytes_of(frame), 8).has_value());
  // A negative length other than -1.
  std::string bad = bind_frame("", "", {}, {std::string("abcd")});
  bad[5 + 2 + 2 + 2] = '\xff';
  bad[5 + 2 + 2 + 2 + 3] = '\xfe';
  EXPECT_FALSE(summarize_bind(bytes_of(bad), 8).has_value());
}

std::string text_of(const ExtendedTracker& t, std::string_view portal) {
  const Binding* b = t.portal(portal);
  if (b == nullptr) return "(no portal)";
  return b->text ? b->text->text : "(unknown statement)";
}

TEST(ExtendedTracker, APortalRunsTheTextItsStatementHadWhenBound) {
  ExtendedTracker t;
  // Cycle 0: Parse, Bind, Execute, Sync, all sent before any answer (pipelined).
  t.on_parse("s1", "SELECT 1", 8);
  t.start_bind("", "s1");
  t.commit_bind();
  EXPECT_EQ(text_of(t, ""), "SELECT 1") << "a Parse in flight names its text for the Bind after it";
  t.on_cycle_end();
  t.on_parse_complete();
  t.on_ready(true);
  EXPECT_EQ(text_of(t, ""), "(no portal)") << "the unnamed portal ended with the transaction";
  // Cycle 1: the statement is still there for new Binds.
  t.start_bind("", "s1");
  t.commit_bind();
  EXPECT_EQ(text_of(t, ""), "SELECT 1");
  // The unnamed statement replaced between Bind and Execute: the portal keeps its own.
  t.on_parse("", "SELECT 2", 8);
  EXPECT_EQ(text_of(t, ""), "SELECT 1");
}

TEST(ExtendedTracker, AParseTheServerRefusedNeverReplacesTheText) {
  ExtendedTracker t;
  t.on_parse("s1", "SELECT 'old'", 12);
  t.on_cycle_end();
  t.on_parse_complete();
  t.on_ready(true);
  // The same name again: the server answers 42P05 and skips to Sync.
  t.on_parse("s1", "SELECT 'new'", 12);
  t.on_cycle_end();
  t.on_error();
  t.on_ready(true);
  t.start_bind("", "s1");
  t.commit_bind();
  EXPECT_EQ(text_of(t, ""), "SELECT 'old'");
  // Closed: a later Bind of the name knows no text.
  t.on_close(Close::kStatement, "s1");
  t.start_bind("", "s1");
  t.commit_bind();
  EXPECT_EQ(text_of(t, ""), "(unknown statement)");
  EXPECT_EQ(t.statement_count(), 0u);
}

TEST(ExtendedTracker, AnErrorOnlyUndoesTheParsesOfItsOwnCycle) {
  ExtendedTracker t;
  t.on_parse("a", "SELECT 'a'", 10);  // cycle 0: fails
  t.on_cycle_end();
  t.on_parse("b", "SELECT 'b'", 10);  // cycle 1, sent before cycle 0 was answered
  t.on_cycle_end();
  t.on_error();
  t.on_ready(true);
  t.on_parse_complete();
  t.on_ready(true);
  t.start_bind("", "b");
  t.commit_bind();
  EXPECT_EQ(text_of(t, ""), "SELECT 'b'");
  t.start_bind("", "a");
  t.commit_bind();
  EXPECT_EQ(text_of(t, ""), "(unknown statement)");
}

TEST(ExtendedTracker, NamedPortalsLiveUntilCloseOrTheirTransactionsEnd) {
  ExtendedTracker t(0, 0, ExtendedTracker::kTextBytesMaxDefault, /*portals_max=*/2);
  t.on_parse("s", "SELECT s", 8);
  for (const char* name : {"c1", "c2", "c3"}) {
    Binding& b = t.start_bind(name, "s");
    b.sizes = "1";
    t.commit_bind();
  }
  EXPECT_EQ(text_of(t, "c1"), "SELECT s");
  EXPECT_EQ(text_of(t, "c2"), "SELECT s");
  EXPECT_EQ(text_of(t, "c3"), "(no portal)") << "past portals_max a portal is not kept";
  t.on_close(Close::kPortal, "c1");
  EXPECT_EQ(text_of(t, "c1"), "(no portal)");
  t.on_cycle_end();
  t.on_parse_complete();
  t.on_ready(false);  // still in a transaction: portals stay
  EXPECT_EQ(text_of(t, "c2"), "SELECT s");
  t.on_ready(true);
  EXPECT_EQ(text_of(t, "c2"), "(no portal)");
}

TEST(ExtendedTracker, EachExecutesParametersAreChargedToItsOwnResult) {
  ExtendedTracker t;
  // Cycle 0: two Executes; their results come in order.
  t.on_execute(10);
  t.on_execute(20);
  t.on_cycle_end();
  EXPECT_EQ(t.begin_result(), 10u);
  EXPECT_EQ(t.begin_result(), 0u) << "once per result";
  t.end_result();
  EXPECT_EQ(t.begin_result(), 20u);
  t.end_result();
  t.on_ready(true);
  // Cycle 1, a Query: its results carry no charge.
  t.on_cycle_end();
  EXPECT_EQ(t.begin_result(), 0u);
  t.end_result();
  t.on_ready(true);
  // Cycle 2 fails before its Executes run; cycle 3 was sent meanwhile.
  t.on_execute(5);
  t.on_cycle_end();
  t.on_execute(7);
  t.on_cycle_end();
  t.on_error();
  t.on_ready(true);
  EXPECT_EQ(t.begin_result(), 7u) << "the skipped Execute's charge never lands on another result";
}

TEST(ExtendedTracker, StoredTextIsBounded) {
  ExtendedTracker t(0, 0, /*text_bytes_max=*/20);
  t.on_parse("a", std::string(15, 'a'), 15);
  t.on_parse("b", std::string(15, 'b'), 15);  // over the bound: only its size is kept
  t.on_cycle_end();
  t.on_parse_complete();
  t.on_parse_complete();
  t.start_bind("", "b");
  t.commit_bind();
  const Binding* b = t.portal("");
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->text);
  EXPECT_EQ(b->text->text, "");
  EXPECT_EQ(b->text->full_bytes, 15u);
  t.on_close(Close::kStatement, "a");
  t.on_parse("c", std::string(15, 'c'), 15);  // room again
  t.start_bind("", "c");
  t.commit_bind();
  EXPECT_EQ(text_of(t, ""), std::string(15, 'c'));
}

}  // namespace
}  // namespace gh::pg
