// Parser for the mechanism list of AuthenticationSASL, to pick SCRAM-SHA-256 for upstream login.
// Pure function over bytes; must not depend on the PostgreSQL codec or on I/O.
#pragma once

#include <string_view>

#include "core/error.hpp"

namespace gh::pg {

inline constexpr size_t kSaslMechanismsMax = 16;

struct SaslMechanisms {
  bool scram_sha_256 = false;
  // Offered by servers built with TLS; we do not implement channel binding, so it is only noted.
  bool scram_sha_256_plus = false;
};

// `data` is the AuthenticationSASL body after its Int32(10) code: mechanism names, each ending in
// NUL, then one more NUL (protocol docs, "Message Formats"). Errors: a missing terminator, bytes
// after the final NUL, an empty list, more than kSaslMechanismsMax names. Unknown names are
// skipped. Use scram_sha_256 to decide; a server not offering it cannot be logged in to by SASL.
gh::Result<SaslMechanisms> parse_sasl_mechanisms(std::string_view data);

}  // namespace gh::pg
