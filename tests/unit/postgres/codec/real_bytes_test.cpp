// Byte sequences as psql (libpq) and PostgreSQL 15 put them on the wire, written out by hand from
// the protocol, decoded and re-encoded. Must not depend on sockets or a running server.
#include <string>
#include <string_view>
#include <vector>

#include "codec_test_support.hpp"

namespace gh::pg::test {
namespace {

using namespace std::string_view_literals;

// psql's SSLRequest: length 8, code 1234.5679.
constexpr std::string_view kPsqlSslRequest = "\x00\x00\x00\x08\x04\xd2\x16\x2f"sv;

// psql's StartupMessage (libpq order: user, database, application_name, client_encoding).
constexpr std::string_view kPsqlStartup =
    "\x00\x00\x00\x54"
    "\x00\x03\x00\x00"
    "user\0"
    "postgres\0"
    "database\0"
    "postgres\0"
    "application_name\0"
    "psql\0"
    "client_encoding\0"
    "UTF8\0"
    "\0"sv;
static_assert(kPsqlStartup.size() == 0x54);

// The server's answer to a trust login: AuthenticationOk, some ParameterStatus, BackendKeyData,
// ReadyForQuery, all in one read.
constexpr std::string_view kServerLogin =
    "R\x00\x00\x00\x08\x00\x00\x00\x00"
    "S\x00\x00\x00\x1a"
    "application_name\0psql\0"
    "S\x00\x00\x00\x19"
    "client_encoding\0UTF8\0"
    "S\x00\x00\x00\x30"
    "server_version\0"
    "15.6 (Debian 15.6-0+deb12u1)\0"
    "S\x00\x00\x00\x15"
    "TimeZone\0Etc/UTC\0"
    "K\x00\x00\x00\x0c"
    "\x00\x00\x30\x39"
    "\x12\x34\x56\x78"
    "Z\x00\x00\x00\x05"
    "I"sv;
static_assert(kServerLogin.size() == 9 + 27 + 26 + 49 + 22 + 13 + 6);

// psql: "SELECT 1;" then, on \q, Terminate.
constexpr std::string_view kPsqlQuery =
    "Q\x00\x00\x00\x0e"
    "SELECT 1;\0"
    "X\x00\x00\x00\x04"sv;

// The server's answer to SELECT 1: one int4 column named ?column?, one row, tag, ready.
constexpr std::string_view kSelectOneReply =
    "T\x00\x00\x00\x21"
    "\x00\x01"
    "?column?\0"
    "\x00\x00\x00\x00"
    "\x00\x00"
    "\x00\x00\x00\x17"
    "\x00\x04"
    "\xff\xff\xff\xff"
    "\x00\x00"
    "D\x00\x00\x00\x0b"
    "\x00\x01"
    "\x00\x00\x00\x01"
    "1"
    "C\x00\x00\x00\x0d"
    "SELECT 1\0"
    "Z\x00\x00\x00\x05"
    "I"sv;
static_assert(kSelectOneReply.size() == 34 + 12 + 14 + 6);

// The server's ErrorResponse to "SELECT * FROM nope;" (fields in the order PostgreSQL sends them).
constexpr std::string_view kRelationMissing =
    "E\x00\x00\x00\x67"
    "SERROR\0"
    "VERROR\0"
    "C42P01\0"
    "Mrelation \"nope\" does not exist\0"
    "P15\0"
    "Fparse_relation.c\0"
    "L1392\0"
    "RparserOpenTable\0"
    "\0"sv;
static_assert(kRelationMissing.size() == 0x67 + 1);

// SCRAM: the server offers SCRAM-SHA-256; libpq answers with SASLInitialResponse.
constexpr std::string_view kServerSasl =
    "R\x00\x00\x00\x17"
    "\x00\x00\x00\x0a"
    "SCRAM-SHA-256\0"
    "\0"sv;
static_assert(kServerSasl.size() == 0x17 + 1);
constexpr std::string_view kClientSaslInitial =
    "p\x00\x00\x00\x32"
    "SCRAM-SHA-256\0"
    "\x00\x00\x00\x1c"
    "n,,n=,r=rOprNGfwEbeRWgbNEkqO"sv;
static_assert(kClientSaslInitial.size() == 0x32 + 1);

template <class Decoder>
auto decode_all(Decoder& d, std::string_view bytes) {
  std::vector<decltype(d.next(Bytes{}).message)> out;
  Bytes rest = bytes_of(bytes);
  while (!rest.empty()) {
    const auto r = d.next(rest);
    EXPECT_EQ(r.status, Status::kMessage) << describe(r.error);
    if (r.status != Status::kMessage) break;
    out.push_back(r.message);
    rest = rest.subspan(r.consumed);
  }
  return out;
}

TEST(RealBytes, PsqlConnectionFromTheClientSide) {
  FrontendDecoder d;
  const std::string all =
      std::string(kPsqlSslRequest) + std::string(kPsqlStartup) + std::string(kPsqlQuery);
  const auto msgs = decode_all(d, all);
  ASSERT_EQ(msgs.size(), 4u);
  EXPECT_TRUE(std::holds_alternative<SslRequest>(msgs[0]));
  const auto& s = std::get<StartupMessage>(msgs[1]);
  EXPECT_EQ(s.protocol_version, kProtocolVersion30);
  EXPECT_EQ(s.parameter("user"), "postgres");
  EXPECT_EQ(s.parameter("database"), "postgres");
  EXPECT_EQ(s.parameter("application_name"), "psql");
  EXPECT_EQ(s.parameter("client_encoding"), "UTF8");
  EXPECT_EQ(std::get<Query>(msgs[2]).sql, "SELECT 1;");
  EXPECT_TRUE(std::holds_alternative<Terminate>(msgs[3]));

  // Our encoder writes the very same bytes.
  std::string mine;
  encode_ssl_request(mine);
  const StartupParameter params[] = {{"user", "postgres"},
                                     {"database", "postgres"},
                                     {"application_name", "psql"},
                                     {"client_encoding", "UTF8"}};
  encode_startup_message(mine, params);
  encode_query(mine, "SELECT 1;");
  encode_terminate(mine);
  EXPECT_EQ(mine, all);
}

TEST(RealBytes, ServerLoginSequence) {
  BackendDecoder d;
  const auto msgs = decode_all(d, kServerLogin);
  ASSERT_EQ(msgs.size(), 7u);
  EXPECT_EQ(std::get<Authentication>(msgs[0]).code, Authentication::kOk);
  EXPECT_EQ(std::get<ParameterStatus>(msgs[3]).value, "15.6 (Debian 15.6-0+deb12u1)");
  EXPECT_EQ(std::get<ParameterStatus>(msgs[4]).name, "TimeZone");
  EXPECT_EQ(std::get<BackendKeyData>(msgs[5]).process_id, 12345);
  EXPECT_EQ(std::get<BackendKeyData>(msgs[5]).secret_key, 0x12345678);
  EXPECT_EQ(std::get<ReadyForQuery>(msgs[6]).status, ReadyForQuery::kIdle);

  std::string mine;
  encode_authentication_ok(mine);
  encode_parameter_status(mine, "application_name", "psql");
  encode_parameter_status(mine, "client_encoding", "UTF8");
  encode_parameter_status(mine, "server_version", "15.6 (Debian 15.6-0+deb12u1)");
  encode_parameter_status(mine, "TimeZone", "Etc/UTC");
  encode_backend_key_data(mine, 12345, 0x12345678);
  encode_ready_for_query(mine, 'I');
  EXPECT_EQ(mine, kServerLogin);
}

TEST(RealBytes, SelectOneReply) {
  BackendDecoder d;
  const auto msgs = decode_all(d, kSelectOneReply);
  ASSERT_EQ(msgs.size(), 4u);
  const auto& t = std::get<RowDescription>(msgs[0]);
  ASSERT_EQ(t.field_count, 1);
  const FieldDescription f = *t.field_range().begin();
  EXPECT_EQ(f.name, "?column?");
  EXPECT_EQ(f.type_oid, 23);  // int4
  EXPECT_EQ(f.type_size, 4);
  EXPECT_EQ(f.type_modifier, -1);
  const auto& row = std::get<DataRow>(msgs[1]);
  EXPECT_EQ(*row.value_range().begin(), "1"sv);
  EXPECT_EQ(std::get<CommandComplete>(msgs[2]).tag, "SELECT 1");

  std::string mine;
  const FieldDescription fields[] = {{"?column?", 0, 0, 23, 4, -1, 0}};
  encode_row_description(mine, fields);
  const ColumnValue values[] = {"1"sv};
  encode_data_row(mine, values);
  encode_command_complete(mine, "SELECT 1");
  encode_ready_for_query(mine, 'I');
  EXPECT_EQ(mine, kSelectOneReply);
}

TEST(RealBytes, ErrorResponseAsPostgresSendsIt) {
  BackendDecoder d;
  const BackendDecoded r = d.next(bytes_of(kRelationMissing));
  ASSERT_EQ(r.status, Status::kMessage) << describe(r.error);
  EXPECT_EQ(r.consumed, kRelationMissing.size());
  const auto& e = std::get<ErrorResponse>(r.message);
  EXPECT_EQ(e.field(error_field::kSeverity), "ERROR");
  EXPECT_EQ(e.field(error_field::kSeverityPlain), "ERROR");
  EXPECT_EQ(e.field(error_field::kSqlState), "42P01");
  EXPECT_EQ(e.field(error_field::kMessage), "relation \"nope\" does not exist");
  EXPECT_EQ(e.field(error_field::kPosition), "15");
  EXPECT_EQ(e.field(error_field::kRoutine), "parserOpenTable");
  EXPECT_EQ(e.field(error_field::kDetail), std::nullopt);
}

TEST(RealBytes, ScramStart) {
  BackendDecoder b;
  const BackendDecoded r = b.next(bytes_of(kServerSasl));
  ASSERT_EQ(r.status, Status::kMessage) << describe(r.error);
  const auto& auth = std::get<Authentication>(r.message);
  ASSERT_EQ(auth.code, Authentication::kSasl);
  std::vector<std::string_view> mechs;
  for (std::string_view m : auth.sasl_mechanisms()) mechs.push_back(m);
  EXPECT_EQ(mechs, std::vector<std::string_view>{"SCRAM-SHA-256"});

  const FrontendDecoded c = decode_frontend_frame(bytes_of(kClientSaslInitial), DecoderLimits{});
  ASSERT_EQ(c.status, Status::kMessage) << describe(c.error);
  const auto sasl = parse_sasl_initial_response(std::get<PasswordMessage>(c.message).body);
  ASSERT_TRUE(sasl.has_value());
  EXPECT_EQ(sasl->mechanism, "SCRAM-SHA-256");
  ASSERT_TRUE(sasl->data.has_value());
  EXPECT_EQ(wire::as_chars(*sasl->data), "n,,n=,r=rOprNGfwEbeRWgbNEkqO");

  std::string mine;
  encode_sasl_initial_response(mine, "SCRAM-SHA-256", bytes_of("n,,n=,r=rOprNGfwEbeRWgbNEkqO"));
  EXPECT_EQ(mine, kClientSaslInitial);
}

}  // namespace
}  // namespace gh::pg::test
