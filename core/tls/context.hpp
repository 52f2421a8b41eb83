// TLS contexts (OpenSSL SSL_CTX): server certificate and key, client verification policy.
// Must not know any wire protocol and must do no socket I/O; sessions (session.hpp) use these.
#pragma once

#include <string>
#include <utility>

#include "core/error.hpp"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX, kept out of this header

namespace gh::tls {

struct ServerConfig {
  std::string cert_file;                // PEM: the leaf certificate first, then any intermediates
  std::string key_file;                 // PEM, unencrypted
  std::string min_version = "TLSv1.2";  // "TLSv1.2" or "TLSv1.3"
};

struct ClientConfig {
  enum class Verify {
    kNone,  // PostgreSQL's sslmode=require: encrypt, verify nothing
    kFull,  // sslmode=verify-full: the chain up to a trusted CA, and the host name or IP
  };
  Verify verify = Verify::kFull;
  std::string ca_file;      // PEM bundle for kFull; empty = the system's default trust store
  std::string server_name;  // default for Session::client when it is given no name
};

// An SSL_CTX, reference-counted: copies share it. Built and configured once at start-up, then
// only read (sessions take references), so it may be shared by all shard threads.
class ServerContext {
 public:
  // Errors name the file or setting and give OpenSSL's reason.
  static gh::Result<ServerContext> create(const ServerConfig& config);

  ServerContext(const ServerContext& other);
  ServerContext& operator=(const ServerContext& other);
  ServerContext(ServerContext&& other) noexcept;
  ServerContext& operator=(ServerContext&& other) noexcept;
  ~ServerContext();

  ssl_ctx_st* native() const { return ctx_; }

 private:
  explicit ServerContext(ssl_ctx_st* ctx) : ctx_(ctx) {}
  ssl_ctx_st* ctx_ = nullptr;
};

class ClientContext {
 public:
  static gh::Result<ClientContext> create(const ClientConfig& config);

  ClientContext(const ClientContext& other);
  ClientContext& operator=(const ClientContext& other);
  ClientContext(ClientContext&& other) noexcept;
  ClientContext& operator=(ClientContext&& other) noexcept;
  ~ClientContext();

  ssl_ctx_st* native() const { return ctx_; }
  ClientConfig::Verify verify() const { return verify_; }
  const std::string& server_name() const { return server_name_; }

 private:
  ClientContext(ssl_ctx_st* ctx, ClientConfig::Verify verify, std::string server_name)
      : ctx_(ctx), verify_(verify), server_name_(std::move(server_name)) {}
  ssl_ctx_st* ctx_ = nullptr;
  ClientConfig::Verify verify_ = ClientConfig::Verify::kFull;
  std::string server_name_;
};

}  // namespace gh::tls
