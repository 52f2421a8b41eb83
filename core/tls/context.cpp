// TLS contexts: loading certificates and keys, and the verification policy, into SSL_CTX.
// Must not know any wire protocol and must do no socket I/O.
#include "core/tls/context.hpp"

#include <openssl/ssl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/tls/openssl_errors.hpp"

namespace gh::tls {
namespace {

// Fails fast, naming the file, when it cannot be opened; OpenSSL's own message for a missing
// file ("system lib") does not say which file or why.
gh::Result<void> check_readable(const char* what, const std::string& path) {
  if (path.empty()) return gh::fail(std::string("tls: ") + what + " is not set");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return gh::fail(std::string("tls: cannot read ") + what + " '" + path + "': is a directory");
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return gh::fail(std::string("tls: cannot read ") + what + " '" + path +
                    "': " + std::strerror(errno));
  }
  std::fclose(f);
  return {};
}

gh::Result<int> parse_min_version(const std::string& name) {
  if (name == "TLSv1.2") return TLS1_2_VERSION;
  if (name == "TLSv1.3") return TLS1_3_VERSION;
  return gh::fail("tls: min_version '" + name + "' is not one of TLSv1.2, TLSv1.3");
}

// Never prompt on the terminal for a key passphrase: encrypted keys are refused instead.
int no_passphrase(char*, int, int, void*) { return 0; }

// Settings both sides share. TLS renegotiation is refused: with memory BIOs it would make
// SSL_write wait for input, and PostgreSQL removed it long ago.
void apply_common(SSL_CTX* ctx) {
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // Idle connections give their record buffers back; many idle CI connections are the norm.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

struct CtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxDeleter>;

ssl_ctx_st* up_ref(ssl_ctx_st* ctx) {
  if (ctx != nullptr) SSL_CTX_up_ref(ctx);
  return ctx;
}

}  // namespace

gh::Result<ServerContext> ServerContext::create(const ServerConfig& config) {
  clear_openssl_errors();
  if (auto r = check_readable("cert_file", config.cert_file); !r) return std::unexpected(r.error());
  if (auto r = check_readable("key_file", config.key_file); !r) return std::unexpected(r.error());
  auto min_version = parse_min_version(config.min_version);
  if (!min_version) return std::unexpected(min_version.error());

  CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return gh::fail("tls: SSL_CTX_new failed: " + drain_openssl_errors());
  apply_common(ctx.get());
  SSL_CTX_set_min_proto_version(ctx.get(), *min_version);
  // No session resumption: no shared session cache to lock across shards, no tickets to send.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  SSL_CTX_set_default_passwd_cb(ctx.get(), no_passphrase);

  if (SSL_CTX_use_certificate_chain_file(ctx.get(), config.cert_file.c_str()) != 1) {
    return gh::fail("tls: cannot load certificate chain from '" + config.cert_file +
                    "': " + drain_openssl_errors());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), config.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return gh::fail("tls: cannot load private key from '" + config.key_file +
                    "' for certificate '" + config.cert_file + "': " + drain_openssl_errors());
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return gh::fail("tls: private key '" + config.key_file + "' does not match certificate '" +
                    config.cert_file + "': " + drain_openssl_errors());
  }
  return ServerContext(ctx.release());
}

ServerContext::ServerContext(const ServerContext& other) : ctx_(up_ref(other.ctx_)) {}
ServerContext& ServerContext::operator=(const ServerContext& other) {
  if (this != &other) {
    SSL_CTX_free(ctx_);
    ctx_ = up_ref(other.ctx_);
  }
  return *this;
}
ServerContext::ServerContext(ServerContext&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)) {}
ServerContext& ServerContext::operator=(ServerContext&& other) noexcept {
  if (this != &other) {
    SSL_CTX_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
  }
  return *this;
}
ServerContext::~ServerContext() { SSL_CTX_free(ctx_); }

gh::Result<ClientContext> ClientContext::create(const ClientConfig& config) {
  clear_openssl_errors();
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return gh::fail("tls: SSL_CTX_new failed: " + drain_openssl_errors());
  apply_common(ctx.get());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);

  if (config.verify == ClientConfig::Verify::kFull) {
    if (config.ca_file.empty()) {
      if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
        return gh::fail("tls: cannot load the system trust store: " + drain_openssl_errors());
      }
    } else {
      if (auto r = check_readable("ca_file", config.ca_file); !r) {
        return std::unexpected(r.error());
      }
      if (SSL_CTX_load_verify_file(ctx.get(), config.ca_file.c_str()) != 1) {
        return gh::fail("tls: cannot load CA certificates from '" + config.ca_file +
                        "': " + drain_openssl_errors());
      }
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  }
  return ClientContext(ctx.release(), config.verify, config.server_name);
}

ClientContext::ClientContext(const ClientContext& other)
    : ctx_(up_ref(other.ctx_)), verify_(other.verify_), server_name_(other.server_name_) {}
ClientContext& ClientContext::operator=(const ClientContext& other) {
  if (this != &other) {
    SSL_CTX_free(ctx_);
    ctx_ = up_ref(other.ctx_);
    verify_ = other.verify_;
    server_name_ = other.server_name_;
  }
  return *this;
}
ClientContext::ClientContext(ClientContext&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)),
      verify_(other.verify_),
      server_name_(std::move(other.server_name_)) {}
ClientContext& ClientContext::operator=(ClientContext&& other) noexcept {
  if (this != &other) {
    SSL_CTX_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
    verify_ = other.verify_;
    server_name_ = std::move(other.server_name_);
  }
  return *this;
}
ClientContext::~ClientContext() { SSL_CTX_free(ctx_); }

}  // namespace gh::tls
