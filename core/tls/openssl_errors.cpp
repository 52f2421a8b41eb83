// OpenSSL error queue to text, for the gh::Error values of core/tls.
// Must not know any wire protocol.
#include "core/tls/openssl_errors.hpp"

#include <openssl/err.h>

namespace gh::tls {

std::string drain_openssl_errors(const std::string& fallback) {
  std::string out;
  const char* file = nullptr;
  int line = 0;
  const char* data = nullptr;
  int flags = 0;
  // At most a handful: the first entries carry the cause, later ones only repeat the call chain.
  for (int n = 0; n < 8; ++n) {
    const unsigned long code = ERR_get_error_all(&file, &line, nullptr, &data, &flags);
    if (code == 0) break;
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      out += " (";
      out += data;
      out += ')';
    }
  }
  ERR_clear_error();
  return out.empty() ? fallback : out;
}

void clear_openssl_errors() { ERR_clear_error(); }

}  // namespace gh::tls
