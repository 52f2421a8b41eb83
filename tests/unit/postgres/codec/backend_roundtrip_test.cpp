// Table-driven round trips of every backend message: encode, decode, check fields, split
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

struct BackendCase {
  std::string name;
  std::function<void(std::string&)> encode;
  std::function<void(const BackendMessage&)> check;
};

void PrintTo(const BackendCase& c, std::ostream* os) { *os << c.name; }

constexpr std::byte kSalt[4] = {std::byte{0x01}, std::byte{0xfe}, std::byte{0x00}, std::byte{0x7f}};

std::vector<BackendCase> backend_cases() {
  std::vector<BackendCase> cases;
  cases.push_back({"AuthenticationOk", [](std::string& o) { encode_authentication_ok(o); },
                   [](const BackendMessage& m) {
                     GET_AS(Authentication, m, p);
                     EXPECT_EQ(p->code, Authentication::kOk);
                     EXPECT_TRUE(p->data.empty());
                   }});
  cases.push_back({"AuthenticationCleartextPassword",
                   [](std::string& o) { encode_authentication_cleartext_password(o); },
                   [](const BackendMessage& m) {
                     GET_AS(Authentication, m, p);
                     EXPECT_EQ(p->code, Authentication::kCleartextPassword);
                   }});
  cases.push_back({"AuthenticationMD5Password",
                   [](std::string& o) { encode_authentication_md5_password(o, kSalt); },
                   [](const BackendMessage& m) {
                     GET_AS(Authentication, m, p);
                     EXPECT_EQ(p->code, Authentication::kMd5Password);
                     ASSERT_EQ(p->data.size(), 4u);
                     EXPECT_EQ(p->data[1], std::byte{0xfe});
                   }});
  cases.push_back(
      {"AuthenticationSASL",
       [](std::string& o) {
         const std::string_view mechs[] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"};
         encode_authentication_sasl(o, mechs);
       },
       [](const BackendMessage& m) {
         GET_AS(Authentication, m, p);
         EXPECT_EQ(p->code, Authentication::kSasl);
         std::vector<std::string_view> mechs;
         for (std::string_view s : p->sasl_mechanisms()) mechs.push_back(s);
         EXPECT_EQ(mechs, (std::vector<std::string_view>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}));
       }});
  cases.push_back({"AuthenticationSASLContinue",
                   [](std::string& o) {
                     encode_authentication_sasl_continue(o, bytes_of("r=abc,s=c2FsdA==,i=4096"));
                   },
                   [](const BackendMessage& m) {
                     GET_AS(Authentication, m, p);
                     EXPECT_EQ(p->code, Authentication::kSaslContinue);
                     EXPECT_EQ(wire::as_chars(p->data), "r=abc,s=c2FsdA==,i=4096");
                     // Mechanism list only makes sense for kSasl.
                     EXPECT_TRUE(p->sasl_mechanisms().begin() == p->sasl_mechanisms().end());
                   }});
  cases.push_back({"AuthenticationSASLFinal",
                   [](std::string& o) { encode_authentication_sasl_final(o, bytes_of("v=xyz")); },
                   [](const BackendMessage& m) {
                     GET_AS(Authentication, m, p);
                     EXPECT_EQ(p->code, Authentication::kSaslFinal);
                     EXPECT_EQ(wire::as_chars(p->data), "v=xyz");
                   }});
  cases.push_back({"BackendKeyData", [](std::string& o) { encode_backend_key_data(o, 31337, -2); },
                   [](const BackendMessage& m) {
                     GET_AS(BackendKeyData, m, p);
                     EXPECT_EQ(p->process_id, 31337);
                     EXPECT_EQ(p->secret_key, -2);
                   }});
  cases.push_back({"ParameterStatus",
                   [](std::string& o) { encode_parameter_status(o, "server_version", "16.3"); },
                   [](const BackendMessage& m) {
                     GET_AS(ParameterStatus, m, p);
                     EXPECT_EQ(p->name, "server_version");
                     EXPECT_EQ(p->value, "16.3");
                   }});
  for (char status : {'I', 'T', 'E'}) {
    cases.push_back({std::string("ReadyForQuery") + status,
                     [status](std::string& o) { encode_ready_for_query(o, status); },
                     [status](const BackendMessage& m) {
                       GET_AS(ReadyForQuery, m, p);
                       EXPECT_EQ(p->status, status);
                     }});
  }
  cases.push_back({"RowDescription",
                   [](std::string& o) {
                     const FieldDescription fields[] = {
                         {"id", 16384, 1, 23, 4, -1, 0},
                         {"email", 16384, 2, 25, -1, -1, 0},
                         {"blob", 0, 0, 17, -1, -1, 1},
                     };
                     encode_row_description(o, fields);
                   },
                   [](const BackendMessage& m) {
                     GET_AS(RowDescription, m, p);
                     ASSERT_EQ(p->field_count, 3);
                     std::vector<FieldDescription> fields;
                     for (const FieldDescription& f : p->field_range()) fields.push_back(f);
                     ASSERT_EQ(fields.size(), 3u);
                     EXPECT_EQ(fields[0].name, "id");
                     EXPECT_EQ(fields[0].table_oid, 16384);
                     EXPECT_EQ(fields[0].column_attr, 1);
                     EXPECT_EQ(fields[0].type_oid, 23);
                     EXPECT_EQ(fields[0].type_size, 4);
                     EXPECT_EQ(fields[0].type_modifier, -1);
                     EXPECT_EQ(fields[1].name, "email");
                     EXPECT_EQ(fields[1].type_size, -1);
                     EXPECT_EQ(fields[2].format, 1);
                   }});
  cases.push_back({"RowDescriptionEmpty", [](std::string& o) { encode_row_description(o, {}); },
                   [](const BackendMessage& m) {
                     GET_AS(RowDescription, m, p);
                     EXPECT_EQ(p->field_count, 0);
                     EXPECT_TRUE(p->field_range().begin() == p->field_range().end());
                   }});
  cases.push_back({"DataRow",
                   [](std::string& o) {
                     const ColumnValue values[] = {"1"sv, std::nullopt, ""sv, "alice@example.com"sv,
                                                   "\0\x01"sv};
                     encode_data_row(o, values);
                   },
                   [](const BackendMessage& m) {
                     GET_AS(DataRow, m, p);
                     ASSERT_EQ(p->column_count, 5);
                     std::vector<ColumnValue> values;
                     for (const ColumnValue& v : p->value_range()) values.push_back(v);
                     ASSERT_EQ(values.size(), 5u);
                     EXPECT_EQ(values[0], "1"sv);
                     EXPECT_EQ(values[1], std::nullopt);
                     EXPECT_EQ(values[2], ""sv);
                     EXPECT_EQ(values[3], "alice@example.com"sv);
                     EXPECT_EQ(values[4], "\0\x01"sv);
                   }});
  cases.push_back({"DataRowEmpty", [](std::string& o) { encode_data_row(o, {}); },
                   [](const BackendMessage& m) {
                     GET_AS(DataRow, m, p);
                     EXPECT_EQ(p->column_count, 0);
                   }});
  cases.push_back({"CommandComplete",
                   [](std::string& o) { encode_command_complete(o, "INSERT 0 1"); },
                   [](const BackendMessage& m) {
                     GET_AS(CommandComplete, m, p);
                     EXPECT_EQ(p->tag, "INSERT 0 1");
                   }});
  cases.push_back({"ErrorResponse",
                   [](std::string& o) {
                     encode_error_response(o, {"FATAL", "28P01", "token expired",
                                               "exp was 2024-01-01", "request a new token"});
                   },
                   [](const BackendMessage& m) {
                     GET_AS(ErrorResponse, m, p);
                     EXPECT_EQ(p->field('S'), "FATAL");
                     EXPECT_EQ(p->field('V'), "FATAL");
                     EXPECT_EQ(p->field('C'), "28P01");
                     EXPECT_EQ(p->field('M'), "token expired");
                     EXPECT_EQ(p->field('D'), "exp was 2024-01-01");
                     EXPECT_EQ(p->field('H'), "request a new token");
                     EXPECT_EQ(p->field('P'), std::nullopt);
                     size_t n = 0;
                     for (const ErrorField& f : p->field_range()) {
                       EXPECT_NE(f.code, 0);
                       ++n;
                     }
                     EXPECT_EQ(n, 6u);
                   }});
  cases.push_back({"ErrorResponseNoDetail",
                   [](std::string& o) {
                     encode_error_response(o, {"ERROR", "42501", "permission denied"});
                   },
                   [](const BackendMessage& m) {
                     GET_AS(ErrorResponse, m, p);
                     EXPECT_EQ(p->field('M'), "permission denied");
                     EXPECT_EQ(p->field('D'), std::nullopt);
                     EXPECT_EQ(p->field('H'), std::nullopt);
                   }});
  cases.push_back({"NoticeResponse",
                   [](std::string& o) {
                     encode_notice_response(o, {"NOTICE", "00000", "awaiting approval"});
                   },
                   [](const BackendMessage& m) {
                     GET_AS(NoticeResponse, m, p);
                     EXPECT_EQ(p->field('S'), "NOTICE");
                     EXPECT_EQ(p->field('M'), "awaiting approval");
                   }});
  cases.push_back({"NotificationResponse",
                   [](std::string& o) { encode_notification_response(o, 77, "approvals", "42"); },
                   [](const BackendMessage& m) {
                     GET_AS(NotificationResponse, m, p);
                     EXPECT_EQ(p->process_id, 77);
                     EXPECT_EQ(p->channel, "approvals");
                     EXPECT_EQ(p->payload, "42");
                   }});
  cases.push_back({"CopyInResponse",
                   [](std::string& o) {
                     const int16_t f[] = {0, 0};
                     encode_copy_in_response(o, 0, f);
                   },
                   [](const BackendMessage& m) {
                     GET_AS(CopyInResponse, m, p);
                     EXPECT_EQ(p->format, 0);
                     EXPECT_EQ(p->column_count, 2);
                   }});
  cases.push_back({"CopyOutResponse",
                   [](std::string& o) {
                     const int16_t f[] = {1, 1, 1};
                     encode_copy_out_response(o, 1, f);
                   },
                   [](const BackendMessage& m) {
                     GET_AS(CopyOutResponse, m, p);
                     EXPECT_EQ(p->format, 1);
                     std::vector<int16_t> formats;
                     for (int16_t f : p->column_format_range()) formats.push_back(f);
                     EXPECT_EQ(formats, (std::vector<int16_t>{1, 1, 1}));
                   }});
  cases.push_back({"CopyBothResponse", [](std::string& o) { encode_copy_both_response(o, 0, {}); },
                   [](const BackendMessage& m) {
                     GET_AS(CopyBothResponse, m, p);
                     EXPECT_EQ(p->column_count, 0);
                   }});
  cases.push_back({"CopyData", [](std::string& o) { encode_copy_data(o, bytes_of("a\tb\n")); },
                   [](const BackendMessage& m) {
                     GET_AS(CopyData, m, p);
                     EXPECT_EQ(wire::as_chars(p->data), "a\tb\n");
                   }});
  cases.push_back({"CopyDone", [](std::string& o) { encode_copy_done(o); },
                   [](const BackendMessage& m) { GET_AS(CopyDone, m, p); }});
  cases.push_back({"EmptyQueryResponse", [](std::string& o) { encode_empty_query_response(o); },
                   [](const BackendMessage& m) { GET_AS(EmptyQueryResponse, m, p); }});
  cases.push_back({"ParseComplete", [](std::string& o) { encode_parse_complete(o); },
                   [](const BackendMessage& m) { GET_AS(ParseComplete, m, p); }});
  cases.push_back({"BindComplete", [](std::string& o) { encode_bind_complete(o); },
                   [](const BackendMessage& m) { GET_AS(BindComplete, m, p); }});
  cases.push_back({"CloseComplete", [](std::string& o) { encode_close_complete(o); },
                   [](const BackendMessage& m) { GET_AS(CloseComplete, m, p); }});
  cases.push_back({"NoData", [](std::string& o) { encode_no_data(o); },
                   [](const BackendMessage& m) { GET_AS(NoData, m, p); }});
  cases.push_back({"PortalSuspended", [](std::string& o) { encode_portal_suspended(o); },
                   [](const BackendMessage& m) { GET_AS(PortalSuspended, m, p); }});
  cases.push_back({"ParameterDescription",
                   [](std::string& o) {
                     const int32_t oids[] = {23, 25};
                     encode_parameter_description(o, oids);
                   },
                   [](const BackendMessage& m) {
                     GET_AS(ParameterDescription, m, p);
                     ASSERT_EQ(p->count, 2);
                     std::vector<int32_t> oids;
                     for (int32_t oid : p->type_oid_range()) oids.push_back(oid);
                     EXPECT_EQ(oids, (std::vector<int32_t>{23, 25}));
                   }});
  cases.push_back({"NegotiateProtocolVersion",
                   [](std::string& o) {
                     const std::string_view options[] = {"_pq_.a", "_pq_.b"};
                     encode_negotiate_protocol_version(o, static_cast<int32_t>(kProtocolVersion30),
                                                       options);
                   },
                   [](const BackendMessage& m) {
                     GET_AS(NegotiateProtocolVersion, m, p);
                     EXPECT_EQ(p->newest_minor, 196608);
                     ASSERT_EQ(p->option_count, 2u);
                     std::vector<std::string_view> options;
                     for (std::string_view s : p->option_range()) options.push_back(s);
                     EXPECT_EQ(options, (std::vector<std::string_view>{"_pq_.a", "_pq_.b"}));
                   }});
  cases.push_back({"NegotiateProtocolVersionNoOptions",
                   [](std::string& o) { encode_negotiate_protocol_version(o, 196608, {}); },
                   [](const BackendMessage& m) {
                     GET_AS(NegotiateProtocolVersion, m, p);
                     EXPECT_EQ(p->option_count, 0u);
                   }});
  cases.push_back(
      {"FunctionCallResponse",
       [](std::string& o) { encode_function_call_response(o, bytes_of("\0\0\0\x01"sv)); },
       [](const BackendMessage& m) {
         GET_AS(FunctionCallResponse, m, p);
         ASSERT_TRUE(p->result.has_value());
         EXPECT_EQ(wire::as_chars(*p->result), "\0\0\0\x01"sv);
       }});
  cases.push_back({"FunctionCallResponseNull",
                   [](std::string& o) { encode_function_call_response(o, std::nullopt); },
                   [](const BackendMessage& m) {
                     GET_AS(FunctionCallResponse, m, p);
                     EXPECT_FALSE(p->result.has_value());
                   }});
  return cases;
}

class BackendRoundTrip : public ::testing::TestWithParam<BackendCase> {};

TEST_P(BackendRoundTrip, DecodesWhole) {
  const BackendCase& c = GetParam();
  std::string wire_bytes;
  c.encode(wire_bytes);
  BackendDecoder d;
  const BackendDecoded r = d.next(bytes_of(wire_bytes));
  ASSERT_EQ(r.status, Status::kMessage) << describe(r.error);
  EXPECT_EQ(r.consumed, wire_bytes.size());
  EXPECT_EQ(r.frame_bytes, wire_bytes.size());
  c.check(r.message);
  std::string with_tail = wire_bytes + "Z";
  const BackendDecoded f = decode_backend_frame(bytes_of(with_tail), DecoderLimits{});
  ASSERT_EQ(f.status, Status::kMessage) << describe(f.error);
  EXPECT_EQ(f.consumed, wire_bytes.size());
  c.check(f.message);
  const HeaderDecoded h = decode_backend_header(bytes_of(wire_bytes), DecoderLimits{});
  ASSERT_EQ(h.status, Status::kMessage);
  EXPECT_EQ(h.header.length + 1, wire_bytes.size());
}

TEST_P(BackendRoundTrip, SplitAtEveryOffset) {
  const BackendCase& c = GetParam();
  std::string wire_bytes;
  c.encode(wire_bytes);
  BackendDecoder d;
  expect_split_everywhere(wire_bytes, kTypedHeaderBytes, [&](Bytes in) { return d.next(in); });
  expect_split_everywhere(wire_bytes, kTypedHeaderBytes,
                          [](Bytes in) { return decode_backend_frame(in, DecoderLimits{}); });
}

TEST_P(BackendRoundTrip, BackToBackOnePerCall) {
  const BackendCase& c = GetParam();
  std::string one;
  c.encode(one);
  const std::string stream = one + one + one;
  BackendDecoder d;
  Bytes rest = bytes_of(stream);
  size_t count = 0;
  while (!rest.empty()) {
    const BackendDecoded r = d.next(rest);
    ASSERT_EQ(r.status, Status::kMessage) << describe(r.error);
    ASSERT_EQ(r.consumed, one.size());
    c.check(r.message);
    rest = rest.subspan(r.consumed);
    ++count;
  }
  EXPECT_EQ(count, 3u);
}

INSTANTIATE_TEST_SUITE_P(AllBackendMessages, BackendRoundTrip, ::testing::ValuesIn(backend_cases()),
                         [](const ::testing::TestParamInfo<BackendCase>& info) {
                           return info.param.name;
                         });

TEST(BackendDecoder, MixedStreamOnePerCall) {
  std::string stream;
  encode_parse_complete(stream);
  encode_bind_complete(stream);
  const FieldDescription fields[] = {{"n", 0, 0, 23, 4, -1, 0}};
  encode_row_description(stream, fields);
  for (int i = 0; i < 3; ++i) {
    const std::string v = std::to_string(i);
    const ColumnValue values[] = {std::string_view(v)};
    encode_data_row(stream, values);
  }
  encode_command_complete(stream, "SELECT 3");
  encode_ready_for_query(stream, 'I');

  BackendDecoder d;
  Bytes rest = bytes_of(stream);
  std::vector<std::string> names;
  while (!rest.empty()) {
    const BackendDecoded r = d.next(rest);
    ASSERT_EQ(r.status, Status::kMessage) << describe(r.error);
    names.emplace_back(message_name(r.message));
    rest = rest.subspan(r.consumed);
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{"ParseComplete", "BindComplete", "RowDescription", "DataRow",
                                      "DataRow", "DataRow", "CommandComplete", "ReadyForQuery"}));
}

TEST(EncryptionAnswer, Decodes) {
  std::string s;
  encode_ssl_answer(s, true);
  encode_ssl_answer(s, false);
  encode_gssenc_answer(s, true);
  EXPECT_EQ(s, "SNG");
  EXPECT_EQ(decode_encryption_answer({}).status, Status::kNeedMore);
  for (char c : s) {
    const EncryptionAnswer a = decode_encryption_answer(bytes_of(std::string_view(&c, 1)));
    EXPECT_EQ(a.status, Status::kMessage);
    EXPECT_EQ(a.answer, c);
    EXPECT_EQ(a.consumed, 1u);
  }
  std::string err;
  encode_error_response(err, {"FATAL", "08P01", "unsupported"});
  const EncryptionAnswer e = decode_encryption_answer(bytes_of(err));
  EXPECT_EQ(e.status, Status::kMessage);
  EXPECT_EQ(e.answer, 'E');
  EXPECT_EQ(e.consumed, 0u);
  EXPECT_EQ(decode_encryption_answer(bytes_of("X")).status, Status::kError);
}

}  // namespace
}  // namespace gh::pg::test
