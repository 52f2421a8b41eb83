// The session's guardrails over real message bytes: refusals kept in order with the upstream's
// ReadyForQuery, and DataRow / CopyData / ErrorResponse masking that keeps every length right.
#include "protocols/postgres/guard.hpp"

#include <gtest/gtest.h>

#include "protocols/postgres/codec/decoder.hpp"
#include "protocols/postgres/codec/encoder.hpp"

namespace gh::pg {
namespace {

Bytes bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// The stand-in must never be valid SQL, or the server would run it.
bool classify_rejects(std::string_view sql) { return !mask::classify_sql(sql).parsed; }

BackendMessage decode(const std::string& frame) {
  BackendDecoded d = decode_backend_frame(bytes(frame), DecoderLimits{});
  EXPECT_EQ(d.status, Status::kMessage);
  EXPECT_EQ(d.consumed, frame.size());
  return d.message;
}

struct Policy {
  Policy() {
    config::Guardrails g;
    config::SqlRule drop;
    drop.name = "no-drops";
    drop.statements = {config::StatementClass::kDrop};
    g.deny.push_back(drop);
    config::MaskRule cards;
    cards.name = "cards";
    cards.detector = "card";
    cards.style = config::MaskStyle::kKeepLast;
    g.mask.push_back(cards);
    config::MaskRule ssn;
    ssn.name = "ssn-column";
    ssn.columns = {"ssn"};
    g.mask.push_back(ssn);
    policy.sql = std::move(*mask::SqlPolicy::compile(g, "t.yaml"));
    policy.mask = std::move(*mask::MaskPolicy::compile(g, "t.yaml"));
    EXPECT_TRUE(policy.mask.grow_scratch(scratch));
    guard.start(&policy, &scratch, &classifications);
  }
  mask::ConnectionPolicy policy;
  mask::Scratch scratch;
  mask::ClassificationCache classifications;
  Guard guard;
};

TEST(Guard, RefusalsReplaceTheStandInsErrorInItsOwnCycle) {
  Policy p;
  const mask::SqlVerdict v = p.guard.judge("SELECT 1; DROP TABLE t");
  ASSERT_FALSE(v.allowed());
  EXPECT_EQ(p.classifications.size(), 1u);  // parsed once, then from the shard's cache
  EXPECT_EQ(p.guard.judge("SELECT 1; DROP TABLE t").reason, v.reason);
  EXPECT_TRUE(p.guard.judge("SELECT 1").allowed());
  EXPECT_EQ(p.classifications.size(), 2u);
  // A session whose settings the parser cannot follow is refused whatever the cache holds.
  Guard hazard;
  hazard.start(&p.policy, &p.scratch, &p.classifications);
  hazard.on_parameter_status("standard_conforming_strings", "off");
  EXPECT_EQ(hazard.judge("SELECT 1").rule, mask::kRuleLexerSettings);
  const std::string error = Guard::refusal_error(v);
  const BackendMessage decoded = decode(error);
  const auto* e = std::get_if<ErrorResponse>(&decoded);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->field('C'), "42501");
  EXPECT_EQ(e->field('M'), "statement refused by gatehouse rule \"no-drops\"");
  EXPECT_EQ(e->field('D'), "drop of t (statement 2)");

  // A refused Query: the stand-in goes upstream, and its syntax error, in the cycle it was
  // sent for, comes back as the refusal. Other errors pass.
  const std::string stand_in = p.guard.stand_in(false, "", 2, error);
  const FrontendDecoded sent = decode_frontend_frame(bytes(stand_in), DecoderLimits{});
  const auto* q = std::get_if<Query>(&sent.message);
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(classify_rejects(q->sql));
  std::string syntax;
  encode_error_response(
      syntax, ErrorFields{.severity = "ERROR",
                          .sqlstate = "42601",
                          .message = "syntax error at or near \"gatehouse_refused_statement\""});
  const ErrorResponse syntax_error = std::get<ErrorResponse>(decode(syntax));
  EXPECT_EQ(p.guard.take_refusal(syntax_error), "");  // cycle 1 is an earlier query's
  p.guard.on_ready();
  std::string other;
  encode_error_response(
      other, ErrorFields{.severity = "ERROR", .sqlstate = "22012", .message = "division by zero"});
  EXPECT_EQ(p.guard.take_refusal(std::get<ErrorResponse>(decode(other))), "");
  EXPECT_EQ(p.guard.take_refusal(syntax_error), error);
  EXPECT_EQ(p.guard.take_refusal(syntax_error), "");  // once
  p.guard.on_ready();

  // A refused Parse keeps its statement name; when the server skipped it (an earlier error in
  // the cycle), the cycle's ReadyForQuery forgets it.
  const std::string parse = p.guard.stand_in(true, "s1", 3, error);
  const FrontendDecoded sent_parse = decode_frontend_frame(bytes(parse), DecoderLimits{});
  const auto* pm = std::get_if<Parse>(&sent_parse.message);
  ASSERT_NE(pm, nullptr);
  EXPECT_EQ(pm->statement, "s1");
  p.guard.on_ready();
  EXPECT_EQ(p.guard.take_refusal(syntax_error), "");
}

TEST(Guard, DataRowsAreMaskedInPlaceWithTheirLengths) {
  Policy p;
  std::string rd;
  const FieldDescription fields[] = {{.name = "note", .type_oid = 25},
                                     {.name = "ssn", .type_oid = 25},
                                     {.name = "n", .type_oid = 23}};
  encode_row_description(rd, fields);
  p.guard.on_row_description(std::get<RowDescription>(decode(rd)));

  std::string frame;
  const ColumnValue values[] = {std::string_view("paid with 4111 1111 1111 1111 today"),
                                std::string_view("078-05-1120"), std::nullopt};
  encode_data_row(frame, values);
  const auto row = std::get<DataRow>(decode(frame));
  std::string out;
  ASSERT_TRUE(p.guard.mask_row(bytes(frame), row, out));
  ASSERT_EQ(out.size(), frame.size());
  const auto masked = std::get<DataRow>(decode(out));
  std::vector<ColumnValue> got;
  for (const ColumnValue& v : masked.value_range()) got.push_back(v);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], "paid with **** **** **** 1111 today");
  EXPECT_EQ(got[1], "***********");
  EXPECT_EQ(got[2], std::nullopt);
  EXPECT_EQ(p.guard.fired_rules(), (std::vector<std::string>{"cards", "ssn-column"}));

  // Only confirmed secrets count as fired: a number failing Luhn is neither masked nor named.
  std::string near;
  const ColumnValue almost[] = {std::string_view("4111111111111112"),
                                std::string_view("078-05-1120"), std::nullopt};
  encode_data_row(near, almost);
  ASSERT_TRUE(p.guard.mask_row(bytes(near), std::get<DataRow>(decode(near)), out));
  EXPECT_NE(out.find("4111111111111112"), std::string::npos);
  EXPECT_EQ(p.guard.fired_rules(), std::vector<std::string>{"ssn-column"});

  // Nothing to mask: the frame is left for the zero-copy path.
  std::string plain;
  const ColumnValue clean[] = {std::string_view("nothing here"), std::nullopt,
                               std::string_view("1")};
  encode_data_row(plain, clean);
  EXPECT_FALSE(p.guard.mask_row(bytes(plain), std::get<DataRow>(decode(plain)), out));
}

// Binary-format columns: text-like types are scanned (their binary form is the text), other
// types are not, and a column rule zeroes a non-text binary value whole.
TEST(Guard, BinaryColumnsFollowTheirType) {
  Policy p;
  std::string rd;
  const FieldDescription fields[] = {{.name = "t", .type_oid = 25, .format = 1},
                                     {.name = "b", .type_oid = 17, .format = 1},
                                     {.name = "ssn", .type_oid = 20, .format = 1}};
  encode_row_description(rd, fields);
  p.guard.on_row_description(std::get<RowDescription>(decode(rd)));
  std::string frame;
  const std::string eight("\x00\x00\x00\x00\x00\x01\x02\x03", 8);
  const ColumnValue values[] = {std::string_view("4111111111111111"),
                                std::string_view("4111111111111111"), std::string_view(eight)};
  encode_data_row(frame, values);
  std::string out;
  ASSERT_TRUE(p.guard.mask_row(bytes(frame), std::get<DataRow>(decode(frame)), out));
  const auto masked = std::get<DataRow>(decode(out));
  std::vector<ColumnValue> got;
  for (const ColumnValue& v : masked.value_range()) got.push_back(v);
  EXPECT_EQ(got[0], "************1111");
  EXPECT_EQ(got[1], "4111111111111111");  // bytea: not text
  EXPECT_EQ(got[2], std::string(8, '\0'));
}

TEST(Guard, CopyDataAndErrorDetailsAreMasked) {
  Policy p;
  std::string copy;
  const std::string line = "7\talice\t4111111111111111\n";
  encode_copy_data(copy, bytes(line));
  std::string out;
  ASSERT_TRUE(p.guard.mask_copy_data(bytes(copy), std::get<CopyData>(decode(copy)), out));
  const auto data = std::get<CopyData>(decode(out)).data;
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(data.data()), data.size()),
            "7\talice\t************1111\n");

  std::string error;
  encode_error_response(error,
                        ErrorFields{.severity = "ERROR",
                                    .sqlstate = "23505",
                                    .message = "duplicate key value violates unique constraint",
                                    .detail = "Key (card)=(4111111111111111) already exists."});
  ASSERT_TRUE(
      p.guard.mask_fields(bytes(error), std::get<ErrorResponse>(decode(error)).fields, out));
  const auto masked = std::get<ErrorResponse>(decode(out));
  EXPECT_EQ(masked.field('D'), "Key (card)=(************1111) already exists.");
  EXPECT_EQ(masked.field('C'), "23505");
}

}  // namespace
}  // namespace gh::pg
