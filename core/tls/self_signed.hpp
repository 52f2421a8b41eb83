// Throwaway certificates: a private CA and a server certificate it signs, for tests and demos.
// Must not know any wire protocol; writes files only when asked to, never on a shard thread.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace gh::tls {

struct CertFiles {
  std::string ca_file;    // <dir>/ca.pem: the CA certificate, the trust anchor for verify-full
  std::string cert_file;  // <dir>/server.pem: the server certificate
  std::string key_file;   // <dir>/server.key: its unencrypted private key, mode 0600
};

// Creates `dir` if needed and writes ca.pem, server.pem and server.key (ECDSA P-256, SHA-256).
// The server certificate names `common_name` as CN and in its subjectAltName (as DNS or IP,
// whichever it is), plus DNS:localhost, IP:127.0.0.1 and IP:::1, for serverAuth. The CA's key is
// not kept: nothing else can ever be signed by it. Errors name the file that could not be written.
gh::Result<CertFiles> write_self_signed(const std::filesystem::path& dir,
                                        std::string_view common_name = "localhost",
                                        int valid_days = 30);

}  // namespace gh::tls
