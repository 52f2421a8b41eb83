// Table-driven refusals: bad lengths, oversize frames, missing terminators, inconsistent counts,
// unknown types and protocol versions. Must not depend on sockets or a server; bytes only.
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "codec_test_support.hpp"

namespace gh::pg::test {
namespace {

using namespace std::string_view_literals;
using namespace std::string_literals;

std::string be32(uint32_t v) {
  std::string s(4, '\0');
  s[0] = static_cast<char>(v >> 24);
  s[1] = static_cast<char>(v >> 16);
  s[2] = static_cast<char>(v >> 8);
  s[3] = static_cast<char>(v);
  return s;
}
std::string be16(uint16_t v) {
  std::string s(2, '\0');
  s[0] = static_cast<char>(v >> 8);
  s[1] = static_cast<char>(v);
  return s;
}
// A typed frame whose length field matches the body.
std::string typed(char type, std::string_view body) {
  return std::string(1, type) + be32(static_cast<uint32_t>(body.size() + 4)) + std::string(body);
}
// A typed frame with an explicit (possibly lying) length field.
std::string typed_len(char type, uint32_t length, std::string_view body = {}) {
  return std::string(1, type) + be32(length) + std::string(body);
}
std::string startup(std::string_view body) {
  return be32(static_cast<uint32_t>(body.size() + 4)) + std::string(body);
}

enum class Side { kStartup, kFrontend, kBackend };

struct BadCase {
  std::string name;
  Side side;
  std::string bytes;
  DecodeError error;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

std::vector<BadCase> bad_cases() {
  const DecoderLimits l;
  std::vector<BadCase> v;
  auto add = [&](std::string name, Side side, std::string bytes, DecodeError e) {
    v.push_back({std::move(name), side, std::move(bytes), e});
  };
  using E = DecodeError;
  using S = Side;

  // ---- startup phase
  add("StartupLengthZero", S::kStartup, be32(0), E::kBadLength);
  add("StartupLengthBelowEight", S::kStartup, be32(7) + "abc", E::kBadLength);
  add("StartupOverTenThousand", S::kStartup, be32(10001), E::kTooLarge);
  add("StartupTwoGiB", S::kStartup, be32(0x80000000u), E::kTooLarge);
  add("StartupMaxLength", S::kStartup, be32(0xffffffffu), E::kTooLarge);
  add("StartupProtocol2", S::kStartup, startup(be32(protocol_version(2, 0)) + "user\0x\0\0"s),
      E::kUnsupportedProtocol);
  add("StartupProtocol4", S::kStartup, startup(be32(protocol_version(4, 0)) + "\0"s),
      E::kUnsupportedProtocol);
  add("StartupUnknownRequestCode", S::kStartup, startup(be32(protocol_version(1234, 5681))),
      E::kUnsupportedProtocol);
  add("StartupNoTerminator", S::kStartup, startup(be32(kProtocolVersion30) + "user\0alice\0"s),
      E::kMalformed);
  add("StartupEmpty", S::kStartup, startup(be32(kProtocolVersion30)), E::kMalformed);
  add("StartupValueWithoutNul", S::kStartup, startup(be32(kProtocolVersion30) + "user\0alice"s),
      E::kMalformed);
  add("StartupNameWithoutValue", S::kStartup, startup(be32(kProtocolVersion30) + "user\0"s),
      E::kMalformed);
  add("StartupBytesAfterTerminator", S::kStartup,
      startup(be32(kProtocolVersion30) + "user\0a\0\0x"s), E::kMalformed);
  add("SslRequestWithBody", S::kStartup, startup(be32(kSslRequestCode) + "xxxx"), E::kMalformed);
  add("GssEncRequestWithBody", S::kStartup, startup(be32(kGssEncRequestCode) + "x"), E::kMalformed);
  add("CancelRequestShort", S::kStartup, startup(be32(kCancelRequestCode) + be32(1)),
      E::kMalformed);
  add("CancelRequestLongKey", S::kStartup,
      startup(be32(kCancelRequestCode) + be32(1) + be32(2) + be32(3)), E::kMalformed);

  // ---- frontend, typed
  add("LengthBelowFour", S::kFrontend, typed_len('Q', 3), E::kBadLength);
  add("LengthZero", S::kFrontend, typed_len('Q', 0), E::kBadLength);
  add("QueryTwoGiB", S::kFrontend, typed_len('Q', 0x80000000u), E::kTooLarge);
  add("QueryLengthMax", S::kFrontend, typed_len('Q', 0xffffffffu), E::kTooLarge);
  add("CopyDataOverLimit", S::kFrontend, typed_len('d', l.message_bytes_max + 1), E::kTooLarge);
  add("PasswordOverAuthLimit", S::kFrontend, typed_len('p', l.auth_bytes_max + 1), E::kTooLarge);
  add("ExecuteOverSmallLimit", S::kFrontend, typed_len('E', l.small_message_bytes_max + 1),
      E::kTooLarge);
  add("DescribeOverSmallLimit", S::kFrontend, typed_len('D', 1u << 20), E::kTooLarge);
  add("SyncWithBody", S::kFrontend, typed('S', "x"), E::kBadLength);
  add("TerminateLong", S::kFrontend, typed_len('X', 8), E::kBadLength);
  add("QueryBelowMinimum", S::kFrontend, typed_len('Q', 4), E::kBadLength);
  add("UnknownFrontendType", S::kFrontend, typed('Z', "I"), E::kUnknownType);
  add("BackendTypeFromClient", S::kFrontend, typed('T', be16(0)), E::kUnknownType);
  add("NulTypeByte", S::kFrontend, typed('\0', "abc"), E::kUnknownType);
  add("QueryNoNul", S::kFrontend, typed('Q', "SELECT 1"), E::kMalformed);
  add("QueryBytesAfterNul", S::kFrontend, typed('Q', "SELECT 1\0;"s), E::kMalformed);
  add("ParseCountTooHigh", S::kFrontend, typed('P', "s\0q\0"s + be16(2) + be32(23)), E::kMalformed);
  add("ParseCountTooLow", S::kFrontend, typed('P', "s\0q\0"s + be16(0) + be32(23)), E::kMalformed);
  add("ParseNoQueryNul", S::kFrontend, typed('P', "s\0query"s), E::kMalformed);
  add("BindFormatCountMismatch", S::kFrontend,
      typed('B', "\0\0"s + be16(2) + be16(0) + be16(0) + be16(3) + be32(0) + be32(0) + be32(0) +
                     be16(0)),
      E::kMalformed);
  add("BindBadFormatCode", S::kFrontend,
      typed('B', "\0\0"s + be16(1) + be16(2) + be16(0) + be16(0)), E::kMalformed);
  add("BindNegativeLength", S::kFrontend,
      typed('B', "\0\0"s + be16(0) + be16(1) + be32(0xfffffffeu) + be16(0)), E::kMalformed);
  add("BindValuePastEnd", S::kFrontend,
      typed('B', "\0\0"s + be16(0) + be16(1) + be32(100) + "abc" + be16(0)), E::kMalformed);
  add("BindBelowMinimum", S::kFrontend, typed('B', "\0\0"s + be16(0) + be16(0)), E::kBadLength);
  add("BindMissingResultFormats", S::kFrontend, typed('B', "\0\0"s + be16(0) + be16(1) + be32(0)),
      E::kMalformed);
  add("BindTrailingBytes", S::kFrontend, typed('B', "\0\0"s + be16(0) + be16(0) + be16(0) + "x"),
      E::kMalformed);
  add("DescribeBadKind", S::kFrontend, typed('D', "Xname\0"s), E::kMalformed);
  add("DescribeNoNul", S::kFrontend, typed('D', "Sname"), E::kMalformed);
  add("CloseBadKind", S::kFrontend, typed('C', "s\0"s), E::kMalformed);
  add("ExecuteMissingMaxRows", S::kFrontend, typed('E', "portal\0\0\0"s), E::kMalformed);
  add("CopyFailNoNul", S::kFrontend, typed('f', "oops"), E::kMalformed);
  add("FunctionCallTruncated", S::kFrontend,
      typed('F', be32(1) + be16(0) + be16(1) + be32(4) + "ab" + be16(0)), E::kMalformed);

  // ---- backend
  add("BackendLengthBelowFour", S::kBackend, typed_len('D', 2), E::kBadLength);
  add("DataRowTwoGiB", S::kBackend, typed_len('D', 0x80000000u), E::kTooLarge);
  add("DataRowOverLimit", S::kBackend, typed_len('D', l.message_bytes_max + 1), E::kTooLarge);
  add("ParameterStatusOverLimit", S::kBackend, typed_len('S', l.parameter_status_bytes_max + 1),
      E::kTooLarge);
  add("AuthenticationOverLimit", S::kBackend, typed_len('R', l.auth_bytes_max + 1), E::kTooLarge);
  add("CommandCompleteOverLimit", S::kBackend, typed_len('C', l.small_message_bytes_max + 1),
      E::kTooLarge);
  add("BackendKeyDataWrongLength", S::kBackend, typed('K', be32(1) + be32(2) + be32(3)),
      E::kBadLength);
  add("ReadyForQueryWrongLength", S::kBackend, typed('Z', "II"), E::kBadLength);
  add("UnknownBackendType", S::kBackend, typed('Q', "x\0"s), E::kUnknownType);
  add("FrontendTypeFromServer", S::kBackend, typed('p', "pw\0"s), E::kUnknownType);
  add("AuthMd5ShortSalt", S::kBackend, typed('R', be32(5) + "abc"), E::kMalformed);
  add("AuthOkWithData", S::kBackend, typed('R', be32(0) + "x"), E::kMalformed);
  add("AuthRemovedCrypt", S::kBackend, typed('R', be32(4) + "ab"), E::kMalformed);
  add("AuthUnknownCode", S::kBackend, typed('R', be32(99)), E::kMalformed);
  add("AuthSaslNoTerminator", S::kBackend, typed('R', be32(10) + "SCRAM-SHA-256\0"s),
      E::kMalformed);
  add("AuthSaslEmptyList", S::kBackend, typed('R', be32(10) + "\0"s), E::kMalformed);
  add("AuthSaslTrailing", S::kBackend, typed('R', be32(10) + "SCRAM-SHA-256\0\0x"s), E::kMalformed);
  add("ParameterStatusOneString", S::kBackend, typed('S', "name\0"s), E::kMalformed);
  add("ParameterStatusNoNul", S::kBackend, typed('S', "name\0value"s), E::kMalformed);
  add("ReadyForQueryBadStatus", S::kBackend, typed('Z', "X"), E::kMalformed);
  add("RowDescriptionCountTooHigh", S::kBackend,
      typed('T', be16(2) + "id\0"s + be32(0) + be16(0) + be32(23) + be16(4) + be32(0xffffffff) +
                     be16(0)),
      E::kMalformed);
  add("RowDescriptionTruncatedField", S::kBackend,
      typed('T', be16(1) + "id\0"s + be32(0) + be16(0) + be32(23)), E::kMalformed);
  add("RowDescriptionBadFormat", S::kBackend,
      typed('T', be16(1) + "id\0"s + be32(0) + be16(0) + be32(23) + be16(4) + be32(0xffffffff) +
                     be16(7)),
      E::kMalformed);
  add("RowDescriptionNameNoNul", S::kBackend, typed('T', be16(1) + "idxxxxxxxxxxxxxxxxxxxxxx"),
      E::kMalformed);
  add("DataRowCountTooHigh", S::kBackend, typed('D', be16(2) + be32(1) + "x"), E::kMalformed);
  add("DataRowCountTooLow", S::kBackend, typed('D', be16(1) + be32(1) + "x" + be32(0xffffffff)),
      E::kMalformed);
  add("DataRowTruncatedColumn", S::kBackend, typed('D', be16(1) + be32(10) + "short"),
      E::kMalformed);
  add("DataRowTruncatedLength", S::kBackend, typed('D', be16(1) + "\0\0"s), E::kMalformed);
  add("DataRowNegativeLength", S::kBackend, typed('D', be16(1) + be32(0xfffffffeu)), E::kMalformed);
  add("DataRowMinInt32Length", S::kBackend, typed('D', be16(1) + be32(0x80000000u)), E::kMalformed);
  add("DataRowHugeColumnLength", S::kBackend, typed('D', be16(1) + be32(0x7fffffffu) + "x"),
      E::kMalformed);
  add("DataRowZeroCountWithBytes", S::kBackend, typed('D', be16(0) + "x"), E::kMalformed);
  add("CommandCompleteNoNul", S::kBackend, typed('C', "SELECT 1"), E::kMalformed);
  add("ErrorNoTerminator", S::kBackend, typed('E', "SERROR\0MBoom\0"s), E::kMalformed);
  add("ErrorFieldNoNul", S::kBackend, typed('E', "SERROR\0MBoom"s), E::kMalformed);
  add("ErrorBytesAfterTerminator", S::kBackend, typed('E', "SERROR\0\0junk"s), E::kMalformed);
  add("NoticeNoTerminator", S::kBackend, typed('N', "MHi\0"s), E::kMalformed);
  add("NotificationNoPayload", S::kBackend, typed('A', be32(1) + "chan\0"s), E::kMalformed);
  add("CopyInBadFormat", S::kBackend, typed('G', "\x02"s + be16(0)), E::kMalformed);
  add("CopyOutCountMismatch", S::kBackend, typed('H', "\x00"s + be16(3) + be16(0)), E::kMalformed);
  add("CopyBothBadColumnFormat", S::kBackend, typed('W', "\x00"s + be16(1) + be16(9)),
      E::kMalformed);
  add("ParameterDescriptionCountMismatch", S::kBackend, typed('t', be16(3) + be32(23)),
      E::kMalformed);
  add("NegotiateNegativeCount", S::kBackend, typed('v', be32(196608) + be32(0xffffffffu)),
      E::kMalformed);
  add("NegotiateCountTooHigh", S::kBackend, typed('v', be32(196608) + be32(3) + "a\0b\0"s),
      E::kMalformed);
  add("NegotiateTrailing", S::kBackend, typed('v', be32(196608) + be32(0) + "x"), E::kMalformed);
  add("FunctionCallResponseNegative", S::kBackend, typed('V', be32(0xfffffffdu)), E::kMalformed);
  add("FunctionCallResponseTrailing", S::kBackend, typed('V', be32(1) + "ab"), E::kMalformed);
  return v;
}

class Malformed : public ::testing::TestWithParam<BadCase> {};

TEST_P(Malformed, IsAnErrorNotACrashAndConsumesNothing) {
  const BadCase& c = GetParam();
  const Bytes in = bytes_of(c.bytes);
  if (c.side == Side::kBackend) {
    BackendDecoder d;
    const BackendDecoded r = d.next(in);
    EXPECT_EQ(r.status, Status::kError);
    EXPECT_EQ(r.error, c.error) << describe(r.error);
    EXPECT_EQ(r.consumed, 0u);
    return;
  }
  FrontendDecoder d = c.side == Side::kStartup ? FrontendDecoder() : typed_frontend_decoder();
  const FrontendDecoded r = d.next(in);
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.error, c.error) << describe(r.error);
  EXPECT_EQ(r.consumed, 0u);
  if (c.side == Side::kStartup) {
    EXPECT_TRUE(d.in_startup_phase());
  }
}

INSTANTIATE_TEST_SUITE_P(Table, Malformed, ::testing::ValuesIn(bad_cases()),
                         [](const ::testing::TestParamInfo<BadCase>& info) {
                           return info.param.name;
                         });

// A length at the limit is legitimate: the decoder waits for it (and says how big the frame is, so
// the session can stream it) instead of refusing; one byte more is refused from the header alone.
TEST(Limits, LengthAtLimitWaitsOneMoreIsRefused) {
  const DecoderLimits l;
  const std::string at = typed_len('d', l.message_bytes_max);
  const FrontendDecoded r = decode_frontend_frame(bytes_of(at), l);
  EXPECT_EQ(r.status, Status::kNeedMore);
  EXPECT_EQ(r.frame_bytes, size_t{l.message_bytes_max} + 1);
  const std::string over = typed_len('d', l.message_bytes_max + 1);
  EXPECT_EQ(decode_frontend_frame(bytes_of(over), l).status, Status::kError);

  const std::string auth_at = typed_len('p', l.auth_bytes_max);
  EXPECT_EQ(decode_frontend_frame(bytes_of(auth_at), l).status, Status::kNeedMore);

  const BackendDecoded b = decode_backend_frame(bytes_of(typed_len('D', 0x40000000u)), l);
  EXPECT_EQ(b.status, Status::kNeedMore);
}

TEST(Limits, StartupAtLimitDecodes) {
  // A StartupMessage of exactly startup_bytes_max bytes is accepted, one byte more is not.
  const DecoderLimits l;
  const std::string head = be32(kProtocolVersion30) + "user\0"s;
  const size_t value_len = l.startup_bytes_max - 4 - head.size() - 2;
  std::string body = head + std::string(value_len, 'x') + "\0\0"s;
  const std::string ok = startup(body);
  ASSERT_EQ(ok.size(), l.startup_bytes_max);
  FrontendDecoder d;
  const FrontendDecoded r = d.next(bytes_of(ok));
  ASSERT_EQ(r.status, Status::kMessage) << describe(r.error);
  EXPECT_EQ(std::get<StartupMessage>(r.message).parameter("user")->size(), value_len);

  body.insert(body.begin() + static_cast<std::ptrdiff_t>(head.size()), 'x');
  FrontendDecoder d2;
  const FrontendDecoded r2 = d2.next(bytes_of(startup(body)));
  EXPECT_EQ(r2.status, Status::kError);
  EXPECT_EQ(r2.error, DecodeError::kTooLarge);
}

TEST(Limits, CustomLimitsApply) {
  DecoderLimits l;
  l.auth_bytes_max = 128;
  std::string pw;
  encode_password_message(pw, std::string(200, 'j'));
  FrontendDecoder d = typed_frontend_decoder(l);
  const FrontendDecoded r = d.next(bytes_of(pw));
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.error, DecodeError::kTooLarge);
}

TEST(Header, ReportsTypeAndLengthEvenWhenRefused) {
  const std::string bad = typed_len('Q', 0x80000000u);
  const HeaderDecoded h = decode_frontend_header(bytes_of(bad), DecoderLimits{});
  EXPECT_EQ(h.status, Status::kError);
  EXPECT_EQ(h.error, DecodeError::kTooLarge);
  EXPECT_EQ(h.header.type, 'Q');
  EXPECT_EQ(h.header.length, 0x80000000u);
  EXPECT_EQ(decode_backend_header(bytes_of("D\0\0"sv), DecoderLimits{}).status, Status::kNeedMore);
}

// A result that is not kMessage holds a harmless default message (never, say, AuthenticationOk).
TEST(Results, NonMessageResultsHoldHarmlessDefaults) {
  BackendDecoder b;
  const BackendDecoded need = b.next(bytes_of("R\0\0"sv));
  EXPECT_EQ(need.status, Status::kNeedMore);
  EXPECT_TRUE(std::holds_alternative<NoData>(need.message));
  const BackendDecoded bad = b.next(bytes_of(typed('R', be32(99))));
  EXPECT_EQ(bad.status, Status::kError);
  EXPECT_TRUE(std::holds_alternative<NoData>(bad.message));
  FrontendDecoder f;
  EXPECT_TRUE(std::holds_alternative<Flush>(f.next({}).message));
}

TEST(Describe, EveryErrorHasText) {
  for (DecodeError e :
       {DecodeError::kNone, DecodeError::kBadLength, DecodeError::kTooLarge,
        DecodeError::kMalformed, DecodeError::kUnknownType, DecodeError::kUnsupportedProtocol}) {
    EXPECT_GT(std::string_view(describe(e)).size(), 3u);
  }
}

// The 'p' helpers refuse what does not fit their format.
TEST(PasswordHelpers, RefuseMalformedBodies) {
  EXPECT_EQ(parse_password({}), std::nullopt);
  EXPECT_EQ(parse_password(bytes_of("secret")), std::nullopt);
  EXPECT_EQ(parse_password(bytes_of("sec\0ret\0"sv)), std::nullopt);
  EXPECT_EQ(parse_password(bytes_of("\0"sv)), ""sv);
  EXPECT_EQ(parse_sasl_initial_response(bytes_of("SCRAM-SHA-256"sv)), std::nullopt);
  EXPECT_EQ(parse_sasl_initial_response(bytes_of("SCRAM-SHA-256\0\0\0"sv)), std::nullopt);
  EXPECT_EQ(parse_sasl_initial_response(bytes_of("SCRAM-SHA-256\0\0\0\0\x05"
                                                 "abc"sv)),
            std::nullopt);
  EXPECT_EQ(parse_sasl_initial_response(bytes_of("SCRAM-SHA-256\0\xff\xff\xff\xfe"sv)),
            std::nullopt);
  EXPECT_EQ(parse_sasl_initial_response(bytes_of("\0\xff\xff\xff\xff"sv)), std::nullopt);
  const auto ok = parse_sasl_initial_response(bytes_of("M\0\0\0\0\0"sv));
  ASSERT_TRUE(ok.has_value());
  ASSERT_TRUE(ok->data.has_value());
  EXPECT_TRUE(ok->data->empty());
}

// Views over hand-built (unvalidated) bytes never read outside them.
TEST(Ranges, StopSafelyOnHandBuiltGarbage) {
  DataRow row{5, bytes_of("\0\0\0\x09short"sv)};
  size_t n = 0;
  for (const ColumnValue& v : row.value_range()) {
    (void)v;
    ++n;
  }
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(field(bytes_of("Mno terminator"sv), 'M'), std::nullopt);
  EXPECT_EQ(field(bytes_of("Sa\0Mb\0"sv), 'M'), "b"sv);
  EXPECT_EQ(field({}, 'M'), std::nullopt);
  StartupMessage s{kProtocolVersion30, "user\0al"sv};
  EXPECT_EQ(s.parameter("user"), std::nullopt);
  Bind b;
  b.parameter_format_count = 3;
  b.parameter_formats = bytes_of("\0\x01"sv);  // shorter than announced
  EXPECT_EQ(b.parameter_format(0), 1);
  EXPECT_EQ(b.parameter_format(2), 0);
}

}  // namespace
}  // namespace gh::pg::test
