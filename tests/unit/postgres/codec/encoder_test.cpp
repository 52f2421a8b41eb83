// Byte-exact checks of MessageWriter and of encoders whose layout the round trips cannot pin down.
// Must not depend on sockets or a server; bytes only.
#include <string>
#include <string_view>

#include "codec_test_support.hpp"

namespace gh::pg::test {
namespace {

using namespace std::string_view_literals;

TEST(MessageWriter, BackPatchesLengthOfTypedMessage) {
  std::string out = "prefix";
  MessageWriter w(out);
  w.begin('Q');
  w.put_cstr("hi");
  EXPECT_EQ(w.finish(), 1u + 4 + 3);
  EXPECT_EQ(out, "prefixQ\0\0\0\x07hi\0"sv);
}

TEST(MessageWriter, UntypedAndIntegersInNetworkOrder) {
  std::string out;
  MessageWriter w(out);
  w.begin_untyped();
  w.put_i8(-1);
  w.put_i16(0x0102);
  w.put_i32(-2);
  w.put_bytes("\0z"sv);
  EXPECT_EQ(w.finish(), 4u + 1 + 2 + 4 + 2);
  EXPECT_EQ(out, "\0\0\0\x0d\xff\x01\x02\xff\xff\xff\xfe\0z"sv);
  // Reusable after finish().
  w.begin('S');
  w.finish();
  EXPECT_EQ(out.substr(13), "S\0\0\0\x04"sv);
}

TEST(MessageWriter, CStringIsCutAtEmbeddedNul) {
  std::string out;
  encode_query(out, "SELECT 1\0; DROP TABLE x"sv);
  EXPECT_EQ(out, "Q\0\0\0\x0dSELECT 1\0"sv);
  FrontendDecoded r = decode_frontend_frame(bytes_of(out), DecoderLimits{});
  ASSERT_EQ(r.status, Status::kMessage);
  EXPECT_EQ(std::get<Query>(r.message).sql, "SELECT 1");
}

TEST(Encoders, UntypedRequests) {
  std::string out;
  encode_ssl_request(out);
  EXPECT_EQ(out, "\0\0\0\x08\x04\xd2\x16\x2f"sv);
  out.clear();
  encode_gssenc_request(out);
  EXPECT_EQ(out, "\0\0\0\x08\x04\xd2\x16\x30"sv);
  out.clear();
  encode_cancel_request(out, 0x01020304, 0x05060708);
  EXPECT_EQ(out, "\0\0\0\x10\x04\xd2\x16\x2e\x01\x02\x03\x04\x05\x06\x07\x08"sv);
}

TEST(Encoders, ErrorResponseWritesSeverityTwice) {
  std::string out;
  encode_error_response(out, {"FATAL", "28000", "no"});
  EXPECT_EQ(out,
            "E\0\0\0\x1e"
            "SFATAL\0"
            "VFATAL\0"
            "C28000\0"
            "Mno\0"
            "\0"sv);
}

TEST(Encoders, BindLayout) {
  std::string out;
  const ColumnValue params[] = {"7"sv, std::nullopt};
  encode_bind(out, "p", "s", params);
  EXPECT_EQ(out,
            "B\0\0\0\x17"
            "p\0"
            "s\0"
            "\0\0"    // no parameter format codes
            "\0\x02"  // two parameters
            "\0\0\0\x01"
            "7"
            "\xff\xff\xff\xff"  // NULL
            "\0\0"sv);          // no result format codes
}

TEST(Encoders, AuthenticationMd5) {
  std::string out;
  const std::byte salt[4] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  encode_authentication_md5_password(out, salt);
  EXPECT_EQ(out, "R\0\0\0\x0c\0\0\0\x05\x01\x02\x03\x04"sv);
}

TEST(Encoders, SingleByteAnswersAreUntyped) {
  std::string out;
  encode_ssl_answer(out, false);
  encode_gssenc_answer(out, false);
  EXPECT_EQ(out, "NN");
}

}  // namespace
}  // namespace gh::pg::test
