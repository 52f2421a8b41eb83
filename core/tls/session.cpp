// TLS sessions over memory BIOs: OpenSSL does the record layer, the reactor does the socket I/O.
// Must not know any wire protocol and must do no socket I/O.
#include "core/tls/session.hpp"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <utility>

#include "core/assert.hpp"
#include "core/tls/openssl_errors.hpp"

namespace gh::tls {
namespace {

bool is_ip_literal(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

// Two memory BIOs handed to `ssl`. An empty input BIO means "retry later", not EOF.
bool attach_memory_bios(SSL* ssl, BIO** in, BIO** out) {
  *in = BIO_new(BIO_s_mem());
  *out = BIO_new(BIO_s_mem());
  if (*in == nullptr || *out == nullptr) {
    BIO_free(*in);
    BIO_free(*out);
    return false;
  }
  BIO_set_mem_eof_return(*in, -1);
  SSL_set_bio(ssl, *in, *out);
  return true;
}

}  // namespace

gh::Result<Session> Session::server(const ServerContext& context) {
  GH_ASSERT(context.native() != nullptr);
  clear_openssl_errors();
  SSL* ssl = SSL_new(context.native());
  BIO* in = nullptr;
  BIO* out = nullptr;
  if (ssl == nullptr || !attach_memory_bios(ssl, &in, &out)) {
    SSL_free(ssl);
    return gh::fail("tls: cannot create a server session: " + drain_openssl_errors());
  }
  SSL_set_accept_state(ssl);
  return Session(ssl, in, out);
}

gh::Result<Session> Session::client(const ClientContext& context, std::string_view server_name) {
  GH_ASSERT(context.native() != nullptr);
  const bool verify = context.verify() == ClientConfig::Verify::kFull;
  const std::string name(server_name.empty() ? std::string_view(context.server_name())
                                             : server_name);
  if (verify && name.empty()) {
    return gh::fail("tls: verify-full needs the server's name to check its certificate");
  }
  clear_openssl_errors();
  SSL* ssl = SSL_new(context.native());
  BIO* in = nullptr;
  BIO* out = nullptr;
  if (ssl == nullptr || !attach_memory_bios(ssl, &in, &out)) {
    SSL_free(ssl);
    return gh::fail("tls: cannot create a client session: " + drain_openssl_errors());
  }
  Session session(ssl, in, out);
  SSL_set_connect_state(ssl);
  if (!name.empty()) {
    bool ok = true;
    if (is_ip_literal(name)) {
      // RFC 6066 §3: SNI carries host names only, never address literals.
      if (verify) ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1;
    } else {
      ok = SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
      if (ok && verify) {
        // RFC 6125 §6.4.3: a wildcard is only a whole left-most label ("*.example.com").
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set1_host(ssl, name.c_str()) == 1;
      }
    }
    if (!ok) {
      return gh::fail("tls: invalid server name '" + name + "': " + drain_openssl_errors());
    }
  }
  return session;
}

Session::Session(Session&& other) noexcept
    : ssl_(std::exchange(other.ssl_, nullptr)),
      in_(std::exchange(other.in_, nullptr)),
      out_(std::exchange(other.out_, nullptr)),
      failure_(std::move(other.failure_)),
      peer_closed_(other.peer_closed_),
      shutdown_sent_(other.shutdown_sent_) {}

Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    SSL_free(ssl_);
    ssl_ = std::exchange(other.ssl_, nullptr);
    in_ = std::exchange(other.in_, nullptr);
    out_ = std::exchange(other.out_, nullptr);
    failure_ = std::move(other.failure_);
    peer_closed_ = other.peer_closed_;
    shutdown_sent_ = other.shutdown_sent_;
  }
  return *this;
}

Session::~Session() { SSL_free(ssl_); }  // frees both BIOs too

std::unexpected<gh::Error> Session::fail_with(std::string what, int ssl_error) {
  std::string reason;
  if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN) {
    reason = drain_openssl_errors("the peer closed the connection");
  } else {
    reason = drain_openssl_errors();
  }
  // A rejected certificate: OpenSSL's queue says only "certificate verify failed"; the
  // verification result says why.
  const long verify_result = SSL_get_verify_result(ssl_);
  if ((SSL_get_verify_mode(ssl_) & SSL_VERIFY_PEER) != 0 && verify_result != X509_V_OK) {
    reason += " (certificate: ";
    reason += X509_verify_cert_error_string(verify_result);
    reason += ')';
  }
  failure_ = "tls: " + std::move(what) + ": " + reason;
  return gh::fail(*failure_);
}

gh::Result<void> Session::feed(std::span<const std::byte> ciphertext) {
  GH_ASSERT(ssl_ != nullptr);
  while (!ciphertext.empty()) {
    const size_t chunk = std::min<size_t>(ciphertext.size(), INT_MAX);
    const int n = BIO_write(in_, ciphertext.data(), static_cast<int>(chunk));
    if (n <= 0) return gh::fail("tls: cannot buffer received data: out of memory");
    ciphertext = ciphertext.subspan(static_cast<size_t>(n));
  }
  return {};
}

void Session::feed_eof() {
  GH_ASSERT(ssl_ != nullptr);
  // From now on an empty input BIO reads as EOF, which OpenSSL reports as an unexpected EOF
  // unless close_notify came first.
  BIO_set_mem_eof_return(in_, 0);
}

gh::Result<bool> Session::handshake() {
  GH_ASSERT(ssl_ != nullptr);
  if (failure_) return gh::fail(*failure_);
  if (SSL_is_init_finished(ssl_)) return true;
  clear_openssl_errors();
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) return true;
  const int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return false;
  return fail_with("handshake failed", e);
}

bool Session::handshake_done() const {
  GH_ASSERT(ssl_ != nullptr);
  return SSL_is_init_finished(ssl_) == 1;
}

gh::Result<size_t> Session::read(std::span<std::byte> out) {
  GH_ASSERT(ssl_ != nullptr);
  if (failure_) return gh::fail(*failure_);
  size_t total = 0;
  clear_openssl_errors();
  // SSL_read_ex returns one record at a time; keep going until `out` is full or input runs dry.
  while (total < out.size() && !peer_closed_) {
    size_t n = 0;
    const int r = SSL_read_ex(ssl_, out.data() + total, out.size() - total, &n);
    if (r == 1) {
      total += n;
      continue;
    }
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      break;
    }
    auto error = fail_with("read failed", e);
    // Hand out what was decrypted before the failure; the next call reports the error.
    if (total > 0) return total;
    return error;
  }
  return total;
}

gh::Result<void> Session::write(std::span<const std::byte> plaintext) {
  GH_ASSERT(ssl_ != nullptr);
  GH_ASSERT(handshake_done());
  if (failure_) return gh::fail(*failure_);
  if (shutdown_sent_) return gh::fail("tls: write after shutdown");
  clear_openssl_errors();
  while (!plaintext.empty()) {
    size_t n = 0;
    const int r = SSL_write_ex(ssl_, plaintext.data(), plaintext.size(), &n);
    if (r != 1) return fail_with("write failed", SSL_get_error(ssl_, r));
    plaintext = plaintext.subspan(n);
  }
  return {};
}

size_t Session::take_output(std::span<std::byte> out) {
  GH_ASSERT(ssl_ != nullptr);
  if (out.empty()) return 0;
  const int n = BIO_read(out_, out.data(), static_cast<int>(std::min<size_t>(out.size(), INT_MAX)));
  return n > 0 ? static_cast<size_t>(n) : 0;
}

size_t Session::pending_output() const {
  GH_ASSERT(ssl_ != nullptr);
  return BIO_ctrl_pending(out_);
}

size_t Session::pending_input() const {
  GH_ASSERT(ssl_ != nullptr);
  return BIO_ctrl_pending(in_);
}

void Session::shutdown() {
  GH_ASSERT(ssl_ != nullptr);
  if (shutdown_sent_) return;
  shutdown_sent_ = true;
  // SSL_shutdown must not follow a fatal error, and there is nothing to close before the
  // handshake is done.
  if (failure_ || !SSL_is_init_finished(ssl_)) return;
  clear_openssl_errors();
  // Returns 0 (our close_notify queued, the peer's not yet seen) or 1; only the queueing matters.
  if (SSL_shutdown(ssl_) < 0) clear_openssl_errors();
}

std::string_view Session::protocol_version() const {
  GH_ASSERT(ssl_ != nullptr);
  if (!SSL_is_init_finished(ssl_)) return {};
  return SSL_get_version(ssl_);
}

}  // namespace gh::tls
