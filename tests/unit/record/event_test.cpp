// Record encoding and decoding, and the statement-text truncation helper.
// Pure byte tests; no files, no threads.
#include "record/event.hpp"

#include <gtest/gtest.h>

#include <cstring>

#include "record/le.hpp"
#include "record_test_support.hpp"

namespace gh::rec {
namespace {

using testing::EventView;

std::vector<std::byte> encode(const StoredEvent& stored) {
  EventView view(stored);
  std::vector<std::byte> body(record_body_bytes(view.event));
  encode_record_body(view.event, body);
  return body;
}

StoredEvent sample() {
  return StoredEvent{EventType::kSessionStart,
                     0x0123456789abcdefull,
                     0,
                     testing::kBaseTimeNs,
                     {{FieldTag::kProtocol, "postgres"},
                      {FieldTag::kChainMember, "alice"},
                      {FieldTag::kChainMember, "ci-runner"},
                      {FieldTag::kGroup, "dba"},
                      {FieldTag::kText, ""},
                      {FieldTag::kClientAddress, "10.0.0.5:51234"}}};
}

TEST(RecordEncoding, RoundTripsEveryFieldInOrder) {
  const StoredEvent original = sample();
  const auto body = encode(original);
  ASSERT_EQ(body.size(),
            limits::record_prefix_bytes + 6 * limits::field_header_bytes + 8 + 5 + 9 + 3 + 0 + 14);
  auto view = decode_record_body(body);
  ASSERT_TRUE(view.has_value()) << view.error().message;
  EXPECT_EQ(to_stored(*view), original);
  EXPECT_EQ(view->first(FieldTag::kChainMember), "alice");
  EXPECT_EQ(view->first(FieldTag::kDatabase), "");
}

TEST(RecordEncoding, LittleEndianPrefixAsDocumented) {
  const auto body = encode(sample());
  EXPECT_EQ(le::load<uint32_t>(body.data()), body.size() + limits::chain_hash_bytes);
  EXPECT_EQ(static_cast<uint8_t>(body[4]), 1);  // kSessionStart
  EXPECT_EQ(le::load<uint64_t>(body.data() + 5), testing::kBaseTimeNs);
  EXPECT_EQ(le::load<uint64_t>(body.data() + 13), 0x0123456789abcdefull);
  EXPECT_EQ(static_cast<uint8_t>(body[13]), 0xef);  // least significant byte first
  EXPECT_EQ(le::load<uint32_t>(body.data() + 21), 0u);
  EXPECT_EQ(le::load<uint16_t>(body.data() + 25), 6u);
  EXPECT_EQ(le::load<uint16_t>(body.data() + 27), 1u);  // kProtocol
  EXPECT_EQ(le::load<uint32_t>(body.data() + 29), 8u);
  EXPECT_EQ(std::memcmp(body.data() + 33, "postgres", 8), 0);
}

TEST(RecordEncoding, UnknownTagsAndTypesSurviveForNewerWriters) {
  StoredEvent newer = sample();
  newer.type = static_cast<EventType>(200);
  newer.fields.push_back({static_cast<FieldTag>(999), "from the future"});
  const auto body = encode(newer);  // the view points into it
  auto view = decode_record_body(body);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(to_stored(*view), newer);
  EXPECT_EQ(event_type_name(newer.type), "unknown");
  EXPECT_EQ(field_tag_name(static_cast<FieldTag>(999)), "");
}

TEST(RecordEncoding, RejectsBrokenFraming) {
  const auto good = encode(sample());
  {
    auto bad = good;
    le::store<uint32_t>(bad.data(), static_cast<uint32_t>(bad.size()));  // forgets the hash
    EXPECT_FALSE(decode_record_body(bad).has_value());
  }
  {
    auto bad = good;
    le::store<uint16_t>(bad.data() + 25, 7);  // one field more than present
    auto view = decode_record_body(bad);
    ASSERT_FALSE(view.has_value());
    EXPECT_NE(view.error().message.find("field 6"), std::string::npos) << view.error().message;
  }
  {
    auto bad = good;
    le::store<uint16_t>(bad.data() + 25, 5);  // one field fewer: bytes left over
    EXPECT_FALSE(decode_record_body(bad).has_value());
  }
  {
    auto bad = good;
    le::store<uint32_t>(bad.data() + 29, 0xFFFFFF00u);  // value runs past the end
    EXPECT_FALSE(decode_record_body(bad).has_value());
  }
  {
    auto bad = good;
    bad[4] = std::byte{0};
    EXPECT_FALSE(decode_record_body(bad).has_value());
  }
  {
    auto bad = good;
    le::store<uint16_t>(bad.data() + 27, 0);  // tag 0
    EXPECT_FALSE(decode_record_body(bad).has_value());
  }
  // Every strict prefix is refused.
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(decode_record_body(std::span(good).first(n)).has_value()) << n;
  }
}

TEST(RecordEncoding, RefusesEventsBeyondTheLimits) {
  std::vector<Field> many(limits::record_field_count_max + 1, Field{FieldTag::kGroup, "g"});
  EXPECT_EQ(record_body_bytes(Event{EventType::kNotice, 1, 0, 0, many}), 0u);
  many.resize(limits::record_field_count_max);
  EXPECT_GT(record_body_bytes(Event{EventType::kNotice, 1, 0, 0, many}), 0u);

  const std::string huge(limits::record_bytes_max, 'x');
  const Field field{FieldTag::kText, huge};
  EXPECT_EQ(record_body_bytes(Event{EventType::kStatement, 1, 0, 0, {&field, 1}}), 0u);
}

TEST(RecordText, ShortTextIsKeptWhole) {
  RecordText text("SELECT 1");
  EXPECT_FALSE(text.truncated());
  EXPECT_EQ(text.text(), "SELECT 1");
  ASSERT_EQ(text.fields().size(), 1u);
  EXPECT_EQ(text.fields()[0].tag, FieldTag::kText);
  EXPECT_EQ(text.full_bytes(), 8u);
}

TEST(RecordText, LongTextIsCutAndRecordsItsFullSize) {
  const std::string sql = "INSERT INTO t VALUES " + std::string(200'000, '1');
  RecordText text(sql);
  ASSERT_TRUE(text.truncated());
  EXPECT_EQ(text.text().size(), limits::record_text_bytes_max);
  EXPECT_TRUE(sql.starts_with(text.text()));
  ASSERT_EQ(text.fields().size(), 2u);
  EXPECT_EQ(text.fields()[1].tag, FieldTag::kTextBytes);
  EXPECT_EQ(text.fields()[1].value, std::to_string(sql.size()));
}

TEST(RecordText, NeverSplitsAUtf8Sequence) {
  // "é" is two bytes; a limit of 4 would cut "aaaé" after the first byte of "é".
  RecordText text("aaa\xc3\xa9zz", 4);
  ASSERT_TRUE(text.truncated());
  EXPECT_EQ(text.text(), "aaa");
  // A four-byte sequence (U+1F600) straddling the limit is dropped whole.
  RecordText emoji("ab\xf0\x9f\x98\x80", 4);
  EXPECT_EQ(emoji.text(), "ab");
  EXPECT_EQ(emoji.full_bytes(), 6u);
}

}  // namespace
}  // namespace gh::rec
