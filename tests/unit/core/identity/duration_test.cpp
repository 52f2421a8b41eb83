// parse_duration_s: the duration syntax of identity configuration and the token CLI.
// Pure function tests.
#include <gtest/gtest.h>

#include "core/identity/jwt.hpp"

namespace gh::identity {
namespace {

TEST(ParseDurationTest, Accepted) {
  const std::pair<const char*, int64_t> cases[] = {
      {"0", 0},
      {"90", 90},
      {"90s", 90},
      {"15m", 900},
      {"2h", 7200},
      {"1d", 86400},
      {"007s", 7},
      {"9223372036854775807", INT64_MAX},
      {"106751991167300d", 106751991167300LL * 86400},
  };
  for (const auto& [text, seconds] : cases) {
    const auto parsed = parse_duration_s(text);
    ASSERT_TRUE(parsed.has_value()) << text << ": " << parsed.error().message;
    EXPECT_EQ(*parsed, seconds) << text;
  }
}

TEST(ParseDurationTest, Refused) {
  for (const char* text :
       {"", "s", "m", "-5", "+5", "5 s", " 5", "5s ", "1.5h", "5w", "5S", "5ms", "1h30m", "abc",
        "9223372036854775808", "106751991167301d", "99999999999999999999h"}) {
    EXPECT_FALSE(parse_duration_s(text).has_value()) << '"' << text << '"';
  }
}

}  // namespace
}  // namespace gh::identity
