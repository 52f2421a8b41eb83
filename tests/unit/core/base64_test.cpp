#include "core/base64.hpp"

#include <gtest/gtest.h>

namespace gh {
namespace {

// RFC 4648 §10 test vectors.
TEST(Base64, Rfc4648Vectors) {
  const std::pair<std::string_view, std::string_view> vectors[] = {
      {"", ""},         {"f", "Zg=="},        {"fo", "Zm8="},        {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
  };
  for (auto [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    EXPECT_EQ(base64_decode(encoded), std::string(plain));
  }
}

TEST(Base64, UrlAlphabetWithoutPadding) {
  const std::string bytes = "\xfb\xff\xbf";
  EXPECT_EQ(base64url_encode(bytes), "-_-_");
  EXPECT_EQ(base64_encode(bytes), "+/+/");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_decode("Zg"), std::string("f"));
  EXPECT_EQ(base64url_decode("Zg=="), std::string("f"));
}

TEST(Base64, RejectsMalformedInput) {
  EXPECT_FALSE(base64_decode("Zg").has_value());      // padding missing
  EXPECT_FALSE(base64_decode("Z===").has_value());    // impossible length
  EXPECT_FALSE(base64url_decode("a+b/").has_value()); // standard alphabet in url text
  EXPECT_FALSE(base64url_decode("Zh").has_value());   // non-zero trailing bits
  EXPECT_FALSE(base64_decode("Zm9v\n").has_value());
}

}  // namespace
}  // namespace gh
