// SASLprep (RFC 4013) of a SCRAM password, with PostgreSQL's fallback to the raw bytes.
// Pure function over bytes; must not depend on the PostgreSQL codec, on I/O or on OpenSSL.
#pragma once

#include <string>
#include <string_view>

namespace gh::pg {

// The password bytes that go into SCRAM's Hi() (RFC 5802 §2.2).
struct PreparedPassword {
  std::string bytes;
  // True when `bytes` is certainly what PostgreSQL's pg_saslprep rule produces: ASCII, invalid
  // UTF-8, prohibited code points, and mapped strings within Latin-1. False for other valid UTF-8:
  // the result is right only if the mapped string is already in NFKC form and has no unassigned
  // or right-to-left code points (saslprep.cpp lists what is not implemented). Worth a warning
  // when the configuration is loaded.
  bool exact = true;
};

// PostgreSQL's rule (protocol docs, "SCRAM-SHA-256 Authentication"): a password that is not
// valid UTF-8, or that SASLprep prohibits, is used as is instead of failing. So pure ASCII (even
// with control characters) is always used unchanged; and valid UTF-8 is mapped per RFC 4013 §2.1
// (non-ASCII spaces to U+0020, RFC 3454 B.1 to nothing) unless a prohibited code point is found.
PreparedPassword saslprep_password(std::string_view password);

}  // namespace gh::pg
