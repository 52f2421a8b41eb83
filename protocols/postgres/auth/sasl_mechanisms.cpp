// Parser for AuthenticationSASL's NUL-separated mechanism list.
// Must not depend on the PostgreSQL codec or on I/O.
#include "protocols/postgres/auth/sasl_mechanisms.hpp"

#include <string>

namespace gh::pg {

gh::Result<SaslMechanisms> parse_sasl_mechanisms(std::string_view data) {
  SaslMechanisms out;
  size_t count = 0;
  std::string_view rest = data;
  while (true) {
    const size_t nul = rest.find('\0');
    if (nul == std::string_view::npos) {
      return gh::fail("AuthenticationSASL: mechanism list is not NUL-terminated");
    }
    const std::string_view name = rest.substr(0, nul);
    rest.remove_prefix(nul + 1);
    if (name.empty()) break;  // the terminating empty name
    if (++count > kSaslMechanismsMax) {
      return gh::fail("AuthenticationSASL: more than " + std::to_string(kSaslMechanismsMax) +
                      " mechanisms");
    }
    if (name == "SCRAM-SHA-256") out.scram_sha_256 = true;
    if (name == "SCRAM-SHA-256-PLUS") out.scram_sha_256_plus = true;
  }
  if (!rest.empty()) return gh::fail("AuthenticationSASL: bytes after the mechanism list");
  if (count == 0) return gh::fail("AuthenticationSASL: empty mechanism list");
  return out;
}

}  // namespace gh::pg
