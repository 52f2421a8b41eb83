// Throwaway CA and server certificate generation with OpenSSL 3 (EVP keys, X509v3 extensions).
// Must not know any wire protocol.
#include "core/tls/self_signed.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "core/tls/openssl_errors.hpp"

namespace gh::tls {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Free>;
using CertPtr = std::unique_ptr<X509, Free>;

bool is_ip(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool add_extension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  std::unique_ptr<X509_EXTENSION, Free> ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value.c_str()));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

// A certificate for `key`, signed by `issuer_key` (self-signed when issuer is null).
CertPtr make_certificate(const std::string& common_name, EVP_PKEY* key, X509* issuer,
                         EVP_PKEY* issuer_key, bool is_ca, const std::string& san, int days) {
  CertPtr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) return nullptr;
  // A random positive 127-bit serial (RFC 5280 §4.1.2.2: unique per CA, at most 20 octets).
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return nullptr;
  serial[0] &= 0x7F;
  std::unique_ptr<BIGNUM, Free> bn(BN_bin2bn(serial, sizeof serial, nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return nullptr;
  }
  // An hour of slack for clocks that lag behind the machine that made the certificate.
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400L * days) == nullptr ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return nullptr;
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  const auto* o = reinterpret_cast<const unsigned char*>("gatehouse");
  const auto* cn = reinterpret_cast<const unsigned char*>(common_name.c_str());
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, o, -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, cn, -1, -1, 0) != 1 ||
      X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name) != 1) {
    return nullptr;
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  bool ok = add_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  if (is_ca) {
    ok = ok &&
         add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
         add_extension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    ok = ok && add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE") &&
         add_extension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature") &&
         add_extension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth") &&
         add_extension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always") &&
         add_extension(cert.get(), &ctx, NID_subject_alt_name, san);
  }
  if (!ok || X509_sign(cert.get(), issuer_key, EVP_sha256()) <= 0) return nullptr;
  return cert;
}

// Writes the whole of `bio`'s contents to `path` with `mode`, replacing the file.
gh::Result<void> write_file(const std::filesystem::path& path, BIO* bio, mode_t mode) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return gh::fail("tls: cannot write '" + path.string() + "': " + std::strerror(errno));
  // An existing file keeps its old mode through O_CREAT; a key must not stay world-readable.
  bool ok = ::fchmod(fd, mode) == 0;
  for (long done = 0; ok && done < size;) {
    const ssize_t n = ::write(fd, data + done, static_cast<size_t>(size - done));
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += n;
  }
  const int saved = errno;
  if (::close(fd) != 0) ok = false;
  if (!ok) {
    return gh::fail("tls: cannot write '" + path.string() + "': " + std::strerror(saved));
  }
  return {};
}

std::unique_ptr<BIO, Free> new_memory_bio() {
  return std::unique_ptr<BIO, Free>(BIO_new(BIO_s_mem()));
}

}  // namespace

gh::Result<CertFiles> write_self_signed(const std::filesystem::path& dir,
                                        std::string_view common_name, int valid_days) {
  const std::string cn(common_name);
  // A ',' would smuggle extra entries into the subjectAltName text given to OpenSSL.
  if (cn.empty() || cn.find_first_of(",\n\r") != std::string::npos) {
    return gh::fail("tls: invalid common name '" + cn + "'");
  }
  if (valid_days < 1) return gh::fail("tls: valid_days must be at least 1");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return gh::fail("tls: cannot create directory '" + dir.string() + "': " + ec.message());

  clear_openssl_errors();
  KeyPtr ca_key(EVP_EC_gen("P-256"));
  KeyPtr server_key(EVP_EC_gen("P-256"));
  if (!ca_key || !server_key)
    return gh::fail("tls: key generation failed: " + drain_openssl_errors());

  std::string san = "DNS:localhost,IP:127.0.0.1,IP:::1";
  if (cn != "localhost" && cn != "127.0.0.1" && cn != "::1") {
    san = (is_ip(cn) ? "IP:" : "DNS:") + cn + "," + san;
  }
  CertPtr ca = make_certificate("gatehouse throwaway CA", ca_key.get(), nullptr, ca_key.get(), true,
                                "", valid_days);
  if (!ca) return gh::fail("tls: CA certificate creation failed: " + drain_openssl_errors());
  CertPtr leaf =
      make_certificate(cn, server_key.get(), ca.get(), ca_key.get(), false, san, valid_days);
  if (!leaf) return gh::fail("tls: server certificate creation failed: " + drain_openssl_errors());

  auto ca_pem = new_memory_bio();
  auto leaf_pem = new_memory_bio();
  auto key_pem = new_memory_bio();
  if (!ca_pem || !leaf_pem || !key_pem || PEM_write_bio_X509(ca_pem.get(), ca.get()) != 1 ||
      PEM_write_bio_X509(leaf_pem.get(), leaf.get()) != 1 ||
      PEM_write_bio_PrivateKey(key_pem.get(), server_key.get(), nullptr, nullptr, 0, nullptr,
                               nullptr) != 1) {
    return gh::fail("tls: PEM encoding failed: " + drain_openssl_errors());
  }
  CertFiles files{(dir / "ca.pem").string(), (dir / "server.pem").string(),
                  (dir / "server.key").string()};
  if (auto r = write_file(files.ca_file, ca_pem.get(), 0644); !r) return std::unexpected(r.error());
  if (auto r = write_file(files.cert_file, leaf_pem.get(), 0644); !r) {
    return std::unexpected(r.error());
  }
  if (auto r = write_file(files.key_file, key_pem.get(), 0600); !r) {
    return std::unexpected(r.error());
  }
  return files;
}

}  // namespace gh::tls
