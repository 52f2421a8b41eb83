// Table-driven round trips of every frontend message: encode, decode, check fields, split
// everywhere. Must not depend on sockets or a server; bytes only.
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "codec_test_support.hpp"

namespace gh::pg::test {
namespace {

using namespace std::string_view_literals;

#define GET_AS(T, msg, var)              \
  const T* var = std::get_if<T>(&(msg)); \
  ASSERT_NE(var, nullptr) << "decoded as " << message_name(msg)

struct FrontendCase {
  std::string name;
  bool startup = false;  // an untyped startup-phase packet
  std::function<void(std::string&)> encode;
  std::function<void(const FrontendMessage&)> check;
};

void PrintTo(const FrontendCase& c, std::ostream* os) { *os << c.name; }

constexpr std::byte kScramData[] = {std::byte{'n'}, std::byte{','}, std::byte{','}, std::byte{'n'},
                                    std::byte{'='}, std::byte{0},   std::byte{0xff}};

std::vector<FrontendCase> frontend_cases() {
  std::vector<FrontendCase> cases;
  cases.push_back({"SslRequest", true, [](std::string& o) { encode_ssl_request(o); },
                   [](const FrontendMessage& m) { GET_AS(SslRequest, m, p); }});
  cases.push_back({"GssEncRequest", true, [](std::string& o) { encode_gssenc_request(o); },
                   [](const FrontendMessage& m) { GET_AS(GssEncRequest, m, p); }});
  cases.push_back({"CancelRequest", true,
                   [](std::string& o) { encode_cancel_request(o, 4242, -559038737); },
                   [](const FrontendMessage& m) {
                     GET_AS(CancelRequest, m, p);
                     EXPECT_EQ(p->process_id, 4242);
                     EXPECT_EQ(p->secret_key, -559038737);
                   }});
  cases.push_back({"StartupMessage", true,
                   [](std::string& o) {
                     const StartupParameter params[] = {{"user", "alice"},
                                                        {"database", "orders"},
                                                        {"application_name", "deploy-bot"},
                                                        {"options", ""}};
                     encode_startup_message(o, params);
                   },
                   [](const FrontendMessage& m) {
                     GET_AS(StartupMessage, m, p);
                     EXPECT_EQ(p->protocol_version, kProtocolVersion30);
                     EXPECT_EQ(p->major_version(), 3);
                     EXPECT_EQ(p->minor_version(), 0);
                     EXPECT_EQ(p->parameter("user"), "alice");
                     EXPECT_EQ(p->parameter("database"), "orders");
                     EXPECT_EQ(p->parameter("options"), "");
                     EXPECT_EQ(p->parameter("User"), std::nullopt);
                     std::vector<std::pair<std::string_view, std::string_view>> seen;
                     p->for_each_parameter(
                         [&](std::string_view n, std::string_view v) { seen.emplace_back(n, v); });
                     ASSERT_EQ(seen.size(), 4u);
                     EXPECT_EQ(seen[2].first, "application_name");
                     EXPECT_EQ(seen[2].second, "deploy-bot");
                   }});
  cases.push_back({"StartupMessageNoParameters", true,
                   [](std::string& o) { encode_startup_message(o, {}); },
                   [](const FrontendMessage& m) {
                     GET_AS(StartupMessage, m, p);
                     EXPECT_EQ(p->parameters_raw, "\0"sv);
                     EXPECT_EQ(p->parameter("user"), std::nullopt);
                   }});
  cases.push_back(
      {"StartupMessageMinor2", true,
       [](std::string& o) {
         const StartupParameter params[] = {{"user", "bob"}, {"_pq_.some_option", "on"}};
         encode_startup_message(o, params, protocol_version(3, 2));
       },
       [](const FrontendMessage& m) {
         GET_AS(StartupMessage, m, p);
         EXPECT_EQ(p->minor_version(), 2);
         EXPECT_EQ(p->parameter("_pq_.some_option"), "on");
       }});
  cases.push_back({"Query", false, [](std::string& o) { encode_query(o, "SELECT 1; SELECT 2"); },
                   [](const FrontendMessage& m) {
                     GET_AS(Query, m, p);
                     EXPECT_EQ(p->sql, "SELECT 1; SELECT 2");
                   }});
  cases.push_back({"QueryEmpty", false, [](std::string& o) { encode_query(o, ""); },
                   [](const FrontendMessage& m) {
                     GET_AS(Query, m, p);
                     EXPECT_EQ(p->sql, "");
                   }});
  cases.push_back({"Parse", false,
                   [](std::string& o) {
                     const int32_t types[] = {23, 0, 25};
                     encode_parse(o, "s1", "SELECT $1::int, $2, $3", types);
                   },
                   [](const FrontendMessage& m) {
                     GET_AS(Parse, m, p);
                     EXPECT_EQ(p->statement, "s1");
                     EXPECT_EQ(p->query, "SELECT $1::int, $2, $3");
                     ASSERT_EQ(p->parameter_type_count, 3);
                     std::vector<int32_t> types;
                     for (int32_t t : p->parameter_type_range()) types.push_back(t);
                     EXPECT_EQ(types, (std::vector<int32_t>{23, 0, 25}));
                   }});
  cases.push_back({"ParseUnnamed", false, [](std::string& o) { encode_parse(o, "", "BEGIN"); },
                   [](const FrontendMessage& m) {
                     GET_AS(Parse, m, p);
                     EXPECT_EQ(p->statement, "");
                     EXPECT_EQ(p->parameter_type_count, 0);
                   }});
  cases.push_back({"Bind", false,
                   [](std::string& o) {
                     const ColumnValue params[] = {"42"sv, std::nullopt, ""sv, "a\0b"sv};
                     encode_bind(o, "p1", "s1", params);
                   },
                   [](const FrontendMessage& m) {
                     GET_AS(Bind, m, p);
                     EXPECT_EQ(p->portal, "p1");
                     EXPECT_EQ(p->statement, "s1");
                     EXPECT_EQ(p->parameter_format_count, 0);
                     EXPECT_EQ(p->parameter_format(3), 0);
                     ASSERT_EQ(p->parameter_count, 4);
                     std::vector<ColumnValue> values;
                     for (const ColumnValue& v : p->parameter_range()) values.push_back(v);
                     ASSERT_EQ(values.size(), 4u);
                     EXPECT_EQ(values[0], "42"sv);
                     EXPECT_EQ(values[1], std::nullopt);
                     EXPECT_EQ(values[2], ""sv);
                     EXPECT_EQ(values[3], "a\0b"sv);
                     EXPECT_EQ(p->result_format_count, 0);
                   }});
  cases.push_back({"BindBinaryFormats", false,
                   [](std::string& o) {
                     // One format code for all parameters, two result format codes.
                     MessageWriter w(o);
                     w.begin('B');
                     w.put_cstr("");
                     w.put_cstr("");
                     w.put_i16(1);
                     w.put_i16(1);
                     w.put_i16(2);
                     w.put_i32(4);
                     w.put_bytes("\0\0\0\x2a"sv);
                     w.put_i32(-1);
                     w.put_i16(2);
                     w.put_i16(0);
                     w.put_i16(1);
                     w.finish();
                   },
                   [](const FrontendMessage& m) {
                     GET_AS(Bind, m, p);
                     EXPECT_EQ(p->parameter_format_count, 1);
                     EXPECT_EQ(p->parameter_format(0), 1);
                     EXPECT_EQ(p->parameter_format(1), 1);
                     EXPECT_EQ(p->parameter_count, 2);
                     std::vector<int16_t> results;
                     for (int16_t f : p->result_format_range()) results.push_back(f);
                     EXPECT_EQ(results, (std::vector<int16_t>{0, 1}));
                   }});
  cases.push_back({"DescribeStatement", false,
                   [](std::string& o) { encode_describe(o, Describe::kStatement, "s1"); },
                   [](const FrontendMessage& m) {
                     GET_AS(Describe, m, p);
                     EXPECT_EQ(p->kind, 'S');
                     EXPECT_EQ(p->name, "s1");
                   }});
  cases.push_back({"DescribePortal", false,
                   [](std::string& o) { encode_describe(o, Describe::kPortal, ""); },
                   [](const FrontendMessage& m) {
                     GET_AS(Describe, m, p);
                     EXPECT_EQ(p->kind, 'P');
                     EXPECT_EQ(p->name, "");
                   }});
  cases.push_back({"Execute", false, [](std::string& o) { encode_execute(o, "p1", 100); },
                   [](const FrontendMessage& m) {
                     GET_AS(Execute, m, p);
                     EXPECT_EQ(p->portal, "p1");
                     EXPECT_EQ(p->max_rows, 100);
                   }});
  cases.push_back({"Close", false, [](std::string& o) { encode_close(o, Close::kPortal, "p1"); },
                   [](const FrontendMessage& m) {
                     GET_AS(Close, m, p);
                     EXPECT_EQ(p->kind, 'P');
                     EXPECT_EQ(p->name, "p1");
                   }});
  cases.push_back({"Sync", false, [](std::string& o) { encode_sync(o); },
                   [](const FrontendMessage& m) { GET_AS(Sync, m, p); }});
  cases.push_back({"Flush", false, [](std::string& o) { encode_flush(o); },
                   [](const FrontendMessage& m) { GET_AS(Flush, m, p); }});
  cases.push_back({"Terminate", false, [](std::string& o) { encode_terminate(o); },
                   [](const FrontendMessage& m) { GET_AS(Terminate, m, p); }});
  cases.push_back({"CopyData", false,
                   [](std::string& o) { encode_copy_data(o, bytes_of("1\t\\N\0x\n"sv)); },
                   [](const FrontendMessage& m) {
                     GET_AS(CopyData, m, p);
                     EXPECT_EQ(wire::as_chars(p->data), "1\t\\N\0x\n"sv);
                   }});
  cases.push_back({"CopyDataEmpty", false, [](std::string& o) { encode_copy_data(o, {}); },
                   [](const FrontendMessage& m) {
                     GET_AS(CopyData, m, p);
                     EXPECT_TRUE(p->data.empty());
                   }});
  cases.push_back({"CopyDone", false, [](std::string& o) { encode_copy_done(o); },
                   [](const FrontendMessage& m) { GET_AS(CopyDone, m, p); }});
  cases.push_back({"CopyFail", false, [](std::string& o) { encode_copy_fail(o, "aborted"); },
                   [](const FrontendMessage& m) {
                     GET_AS(CopyFail, m, p);
                     EXPECT_EQ(p->message, "aborted");
                   }});
  cases.push_back(
      {"PasswordCleartext", false,
       [](std::string& o) { encode_password_message(o, "eyJhbGciOiJFZERTQSJ9.e30.sig"); },
       [](const FrontendMessage& m) {
         GET_AS(PasswordMessage, m, p);
         EXPECT_EQ(parse_password(p->body), "eyJhbGciOiJFZERTQSJ9.e30.sig");
         EXPECT_EQ(parse_sasl_initial_response(p->body), std::nullopt);
       }});
  cases.push_back(
      {"PasswordMd5", false,
       [](std::string& o) { encode_password_message(o, "md5a3556571e93b0d20722ba62be61e8c2d"); },
       [](const FrontendMessage& m) {
         GET_AS(PasswordMessage, m, p);
         EXPECT_EQ(parse_password(p->body), "md5a3556571e93b0d20722ba62be61e8c2d");
       }});
  cases.push_back(
      {"SaslInitialResponse", false,
       [](std::string& o) { encode_sasl_initial_response(o, "SCRAM-SHA-256", Bytes(kScramData)); },
       [](const FrontendMessage& m) {
         GET_AS(PasswordMessage, m, p);
         const auto sasl = parse_sasl_initial_response(p->body);
         ASSERT_TRUE(sasl.has_value());
         EXPECT_EQ(sasl->mechanism, "SCRAM-SHA-256");
         ASSERT_TRUE(sasl->data.has_value());
         EXPECT_EQ(sasl->data->size(), sizeof(kScramData));
         EXPECT_EQ((*sasl->data)[6], std::byte{0xff});
         // Not a valid password packet: the NUL is not the last byte.
         EXPECT_EQ(parse_password(p->body), std::nullopt);
       }});
  cases.push_back(
      {"SaslInitialResponseNoData", false,
       [](std::string& o) { encode_sasl_initial_response(o, "SCRAM-SHA-256", std::nullopt); },
       [](const FrontendMessage& m) {
         GET_AS(PasswordMessage, m, p);
         const auto sasl = parse_sasl_initial_response(p->body);
         ASSERT_TRUE(sasl.has_value());
         EXPECT_FALSE(sasl->data.has_value());
       }});
  cases.push_back({"SaslResponse", false,
                   [](std::string& o) { encode_sasl_response(o, bytes_of("c=biws,r=abc,p=xyz")); },
                   [](const FrontendMessage& m) {
                     GET_AS(PasswordMessage, m, p);
                     EXPECT_EQ(wire::as_chars(parse_sasl_response(p->body)), "c=biws,r=abc,p=xyz");
                   }});
  cases.push_back({"FunctionCall", false,
                   [](std::string& o) {
                     MessageWriter w(o);
                     w.begin('F');
                     w.put_i32(1598);  // an OID
                     w.put_i16(1);
                     w.put_i16(1);  // binary arguments
                     w.put_i16(2);
                     w.put_i32(4);
                     w.put_bytes("\0\0\0\x07"sv);
                     w.put_i32(-1);
                     w.put_i16(1);  // binary result
                     w.finish();
                   },
                   [](const FrontendMessage& m) {
                     GET_AS(FunctionCall, m, p);
                     EXPECT_EQ(p->function_oid, 1598);
                     EXPECT_EQ(p->body.size(), 4u + 2 + 2 + 2 + 8 + 4 + 2);
                   }});
  return cases;
}

class FrontendRoundTrip : public ::testing::TestWithParam<FrontendCase> {};

TEST_P(FrontendRoundTrip, DecodesWhole) {
  const FrontendCase& c = GetParam();
  std::string wire_bytes;
  c.encode(wire_bytes);
  FrontendDecoder d = c.startup ? FrontendDecoder() : typed_frontend_decoder();
  const FrontendDecoded r = d.next(bytes_of(wire_bytes));
  ASSERT_EQ(r.status, Status::kMessage) << describe(r.error);
  EXPECT_EQ(r.consumed, wire_bytes.size());
  EXPECT_EQ(r.frame_bytes, wire_bytes.size());
  EXPECT_EQ(r.error, DecodeError::kNone);
  c.check(r.message);
  if (c.startup) {
    // Only a StartupMessage ends the startup phase.
    EXPECT_EQ(d.in_startup_phase(), !std::holds_alternative<StartupMessage>(r.message));
    return;
  }
  // The free function decodes the same frame the same way, and ignores bytes after it.
  std::string with_tail = wire_bytes + "Qjunk";
  const FrontendDecoded f = decode_frontend_frame(bytes_of(with_tail), DecoderLimits{});
  ASSERT_EQ(f.status, Status::kMessage) << describe(f.error);
  EXPECT_EQ(f.consumed, wire_bytes.size());
  c.check(f.message);
  // And the header alone reports the frame.
  const HeaderDecoded h = decode_frontend_header(bytes_of(wire_bytes), DecoderLimits{});
  ASSERT_EQ(h.status, Status::kMessage);
  EXPECT_EQ(h.header.type, wire_bytes[0]);
  EXPECT_EQ(h.header.length + 1, wire_bytes.size());
}

TEST_P(FrontendRoundTrip, SplitAtEveryOffset) {
  const FrontendCase& c = GetParam();
  std::string wire_bytes;
  c.encode(wire_bytes);
  FrontendDecoder d = c.startup ? FrontendDecoder() : typed_frontend_decoder();
  expect_split_everywhere(wire_bytes, c.startup ? kLengthFieldBytes : kTypedHeaderBytes,
                          [&](Bytes in) { return d.next(in); });
  if (!c.startup) {
    expect_split_everywhere(wire_bytes, kTypedHeaderBytes,
                            [](Bytes in) { return decode_frontend_frame(in, DecoderLimits{}); });
  }
}

TEST_P(FrontendRoundTrip, BackToBackOnePerCall) {
  const FrontendCase& c = GetParam();
  std::string one;
  c.encode(one);
  FrontendDecoder d = c.startup ? FrontendDecoder() : typed_frontend_decoder();
  std::string stream = one + one + one;
  size_t expected = 3;
  if (c.startup) {
    // Only SSLRequest and GSSENCRequest may repeat in the startup phase; after a StartupMessage
    // typed messages follow in the same buffer, and nothing follows a CancelRequest.
    FrontendDecoder probe;
    (void)probe.next(bytes_of(one));
    if (!probe.in_startup_phase()) {
      stream = one;
      encode_query(stream, "SELECT 1");
      encode_sync(stream);
    } else if (std::holds_alternative<CancelRequest>(probe.next(bytes_of(one)).message)) {
      stream = one;
      expected = 1;
    }
  }
  Bytes rest = bytes_of(stream);
  size_t count = 0;
  while (!rest.empty()) {
    const FrontendDecoded r = d.next(rest);
    ASSERT_EQ(r.status, Status::kMessage) << describe(r.error) << " at message " << count;
    ASSERT_GT(r.consumed, 0u);
    ASSERT_LE(r.consumed, rest.size());
    if (count == 0 || stream.size() == 3 * one.size()) {
      ASSERT_EQ(r.consumed, one.size());
      c.check(r.message);
    }
    rest = rest.subspan(r.consumed);
    ++count;
  }
  EXPECT_EQ(count, expected);
}

INSTANTIATE_TEST_SUITE_P(AllFrontendMessages, FrontendRoundTrip,
                         ::testing::ValuesIn(frontend_cases()),
                         [](const ::testing::TestParamInfo<FrontendCase>& info) {
                           return info.param.name;
                         });

// The startup phase proper: SSLRequest keeps it, StartupMessage ends it, typed messages follow in
// the same buffer, one per call.
TEST(FrontendDecoder, SslThenStartupThenTypedInOneBuffer) {
  std::string stream;
  encode_ssl_request(stream);
  encode_gssenc_request(stream);
  const StartupParameter params[] = {{"user", "alice"}, {"database", "db"}};
  encode_startup_message(stream, params);
  encode_query(stream, "SELECT 1");
  encode_parse(stream, "", "SELECT $1");
  const ColumnValue values[] = {"7"sv};
  encode_bind(stream, "", "", values);
  encode_execute(stream, "");
  encode_sync(stream);
  encode_terminate(stream);

  FrontendDecoder d;
  Bytes rest = bytes_of(stream);
  std::vector<std::string> names;
  while (!rest.empty()) {
    const FrontendDecoded r = d.next(rest);
    ASSERT_EQ(r.status, Status::kMessage) << describe(r.error) << " after " << names.size();
    ASSERT_GT(r.consumed, 0u);
    ASSERT_LE(r.consumed, rest.size());
    names.emplace_back(message_name(r.message));
    EXPECT_EQ(d.in_startup_phase(), names.size() < 3);
    rest = rest.subspan(r.consumed);
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{"SSLRequest", "GSSENCRequest", "StartupMessage", "Query",
                                      "Parse", "Bind", "Execute", "Sync", "Terminate"}));
}

TEST(FrontendDecoder, CancelRequestKeepsStartupPhase) {
  std::string stream;
  encode_cancel_request(stream, 1, 2);
  FrontendDecoder d;
  const FrontendDecoded r = d.next(bytes_of(stream));
  ASSERT_EQ(r.status, Status::kMessage);
  EXPECT_TRUE(d.in_startup_phase());
}

TEST(FrontendDecoder, MessageNames) {
  EXPECT_STREQ(message_name(FrontendMessage{Query{}}), "Query");
  EXPECT_STREQ(message_name(FrontendMessage{SslRequest{}}), "SSLRequest");
  EXPECT_STREQ(message_name(FrontendMessage{PasswordMessage{}}), "PasswordMessage");
}

}  // namespace
}  // namespace gh::pg::test
