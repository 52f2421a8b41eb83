// Unit tests of the MD5 password response, the SASL mechanism list parser and SASLprep.
// Sans-I/O; expected MD5 values come from md5sum and from a second OpenSSL code path.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <array>

#include "protocols/postgres/auth/md5_password.hpp"
#include "protocols/postgres/auth/sasl_mechanisms.hpp"
#include "protocols/postgres/auth/saslprep.hpp"

namespace gh::pg {
namespace {

std::array<std::byte, 4> salt_of(unsigned char a, unsigned char b, unsigned char c,
                                 unsigned char d) {
  return {std::byte{a}, std::byte{b}, std::byte{c}, std::byte{d}};
}

// Derived by hand in a shell:
//   inner=$(echo -n "secretpostgres" | md5sum | cut -d' ' -f1)   # 53f48b7c4b76a86ce72276c5755f217d
//   (printf '%s' "$inner"; printf '\x01\x02\x03\x04') | md5sum    #
//   bb41a296aab6baccb36ff243a562abff
TEST(Md5Password, LiteralVectors) {
  EXPECT_EQ(md5_password_response("postgres", "secret", salt_of(1, 2, 3, 4)).value(),
            "md5bb41a296aab6baccb36ff243a562abff");
  // (printf '%s' "$(echo -n pencilgatehouse | md5sum | cut -d' ' -f1)"; printf '\xde\xad\xbe\xef')
  EXPECT_EQ(md5_password_response("gatehouse", "pencil", salt_of(0xde, 0xad, 0xbe, 0xef)).value(),
            "md57f0386ff4ffc27c81152ff04cffbf3de");
}

std::string reference_md5_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr), 1);
  std::string out;
  char buf[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", digest[i]);
    out += buf;
  }
  return out;
}

TEST(Md5Password, MatchesFormulaComputedIndependently) {
  const struct {
    std::string user, password;
    std::array<std::byte, 4> salt;
  } cases[] = {
      {"alice", "correct horse", salt_of(0, 0, 0, 0)},
      {"", "", salt_of(0xff, 0xff, 0xff, 0xff)},
      {"bob", std::string("pw\0with nul", 11), salt_of(0x80, 0x00, 0x7f, 0x0a)},
      {std::string(300, 'u'), std::string(500, 'p'), salt_of(9, 8, 7, 6)},
  };
  for (const auto& c : cases) {
    const std::string salt(reinterpret_cast<const char*>(c.salt.data()), 4);
    const std::string expected =
        "md5" + reference_md5_hex(reference_md5_hex(c.password + c.user) + salt);
    EXPECT_EQ(md5_password_response(c.user, c.password, c.salt).value(), expected);
  }
}

using namespace std::string_view_literals;

TEST(SaslMechanisms, FindsScramSha256) {
  auto m = parse_sasl_mechanisms("SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"sv);
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_TRUE(m->scram_sha_256);
  EXPECT_TRUE(m->scram_sha_256_plus);

  m = parse_sasl_mechanisms("SCRAM-SHA-256\0\0"sv);
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(m->scram_sha_256);
  EXPECT_FALSE(m->scram_sha_256_plus);
}

TEST(SaslMechanisms, OnlyUnknownOrPlusMeansNoScram) {
  auto m = parse_sasl_mechanisms("SCRAM-SHA-256-PLUS\0OAUTHBEARER\0\0"sv);
  ASSERT_TRUE(m.has_value());
  EXPECT_FALSE(m->scram_sha_256);
  // Exact names only: neither a prefix nor a different case counts.
  m = parse_sasl_mechanisms("SCRAM-SHA-25\0scram-sha-256\0SCRAM-SHA-256X\0\0"sv);
  ASSERT_TRUE(m.has_value());
  EXPECT_FALSE(m->scram_sha_256);
}

TEST(SaslMechanisms, RejectsMalformedLists) {
  const std::string_view bad[] = {
      ""sv,
      "\0"sv,                     // empty list
      "SCRAM-SHA-256"sv,          // no NUL at all
      "SCRAM-SHA-256\0"sv,        // no list terminator
      "SCRAM-SHA-256\0\0junk"sv,  // bytes after the list
      "SCRAM-SHA-256\0\0\0"sv,
  };
  for (std::string_view data : bad) {
    EXPECT_FALSE(parse_sasl_mechanisms(data).has_value()) << testing::PrintToString(data);
  }
  std::string many;
  for (int i = 0; i < 17; ++i) many += "X" + std::to_string(i) + '\0';
  many += '\0';
  EXPECT_FALSE(parse_sasl_mechanisms(many).has_value());
}

TEST(Saslprep, AsciiIsUnchangedAndExact) {
  for (std::string_view pw : {"pencil"sv, ""sv, "a b\tc\x7f"sv, "\x01\x02"sv, "=,"sv}) {
    const PreparedPassword p = saslprep_password(pw);
    EXPECT_EQ(p.bytes, pw);
    EXPECT_TRUE(p.exact);
  }
}

TEST(Saslprep, InvalidUtf8IsUsedRaw) {
  for (std::string_view pw :
       {"\xff"sv, "ab\xc3"sv, "\xc0\xaf"sv /* overlong '/' */, "\xed\xa0\x80"sv /* surrogate */,
        "\xf4\x90\x80\x80"sv, "\xc2\xa0\x80"sv /* stray continuation after a valid space */}) {
    const PreparedPassword p = saslprep_password(pw);
    EXPECT_EQ(p.bytes, pw);
    EXPECT_TRUE(p.exact);
  }
}

TEST(Saslprep, MapsSpacesAndMappedToNothing) {
  // U+00A0 and U+3000 -> SPACE; U+00AD SOFT HYPHEN and U+FEFF -> nothing; U+200B -> SPACE (as
  // PostgreSQL, which applies C.1.2 first).
  PreparedPassword p = saslprep_password(
      "a\xc2\xa0"
      "b\xe3\x80\x80"
      "c\xc2\xad"
      "d\xef\xbb\xbf"
      "e\xe2\x80\x8b"
      "f");
  EXPECT_EQ(p.bytes, "a b cde f");
  EXPECT_TRUE(p.exact);
}

TEST(Saslprep, ProhibitedOrEmptyResultFallsBackToRaw) {
  const std::string_view raw[] = {
      "a\xc2\xa0\xee\x80\x80"sv,  // private use U+E000, even with a mappable space
      "\xc2\x85x"sv,              // U+0085, C.2.2 control
      "x\xef\xbf\xbe"sv,          // U+FFFE non-character
      "x\xf0\x9f\xbf\xbf"sv,      // U+1FFFF non-character in plane 1
      "x\xe2\x80\x8e"sv,          // U+200E LEFT-TO-RIGHT MARK, C.8
      "x\xf3\xa0\x80\x81"sv,      // U+E0001 language tag, C.9
      "\xc2\xad\xef\xbb\xbf"sv,   // maps to the empty string
  };
  for (std::string_view pw : raw) {
    const PreparedPassword p = saslprep_password(pw);
    EXPECT_EQ(p.bytes, pw) << testing::PrintToString(pw);
    EXPECT_TRUE(p.exact);
  }
}

TEST(Saslprep, BeyondLatin1IsMarkedInexact) {
  // Latin-1 letters are NFKC-stable: exact.
  EXPECT_TRUE(saslprep_password("gr\xc3\xbc\xc3\x9f"
                                "e")
                  .exact);
  // U+00B2 SUPERSCRIPT TWO would become '2' under NFKC, which is not implemented.
  PreparedPassword p = saslprep_password("x\xc2\xb2");
  EXPECT_FALSE(p.exact);
  EXPECT_EQ(p.bytes, "x\xc2\xb2");
  // Cyrillic: passed through unnormalized.
  p = saslprep_password("\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c");
  EXPECT_FALSE(p.exact);
  EXPECT_EQ(p.bytes, "\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c");
}

}  // namespace
}  // namespace gh::pg
