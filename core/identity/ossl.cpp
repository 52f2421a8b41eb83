// OpenSSL error-queue text and the process-wide SHA-256 fetch for identity.
// Must not depend on protocols or I/O.
#include "core/identity/ossl.hpp"

#include <openssl/err.h>

namespace gh::identity::ossl {

std::string drain_errors() {
  std::string out;
  char buffer[256];
  while (unsigned long code = ERR_get_error()) {
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!out.empty()) out += "; ";
    out += buffer;
  }
  return out;
}

const EVP_MD* sha256() {
  // Never freed: it lives as long as the process, like OpenSSL's own default provider.
  static const EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

}  // namespace gh::identity::ossl
