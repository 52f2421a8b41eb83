// The control plane's wiring (admin API server, its trail writer) and the subcommands that call
// the admin API (token exchange, revoke). Composition root: may depend on every module.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/admin/api.hpp"
#include "core/admin/audit.hpp"
#include "core/admin/http_server.hpp"
#include "core/config.hpp"
#include "core/identity/issuer.hpp"
#include "core/identity/jwt.hpp"
#include "core/identity/revocation.hpp"
#include "record/ring.hpp"

namespace gh::app {

// Admin events go into a ring of their own (the one after the shards'), so that the control
// plane never produces into a shard's ring; handler threads take turns as its one producer.
class RingAuditSink final : public admin::AuditSink {
 public:
  explicit RingAuditSink(rec::Ring& ring) : ring_(ring) {}
  Result<void> record(const admin::AuditEntry& entry) override;

 private:
  std::mutex mutex_;
  rec::Ring& ring_;
};

// Audit entries of a gateway that does not record (recording.enabled: false) go nowhere.
class DiscardAuditSink final : public admin::AuditSink {
 public:
  Result<void> record(const admin::AuditEntry&) override { return {}; }
};

class AdminRuntime {
 public:
  // Starts the admin API of `config.admin` on its own threads. `ring` (may be null: not recorded)
  // receives the admin events. Everything passed must outlive the runtime.
  static Result<std::unique_ptr<AdminRuntime>> start(const config::Config& config,
                                                     const identity::Validator& validator,
                                                     identity::RevocationRegistry& revocations,
                                                     rec::Ring* ring);
  ~AdminRuntime();
  void stop();
  std::string url() const;  // "http://127.0.0.1:7443"

 private:
  AdminRuntime() = default;
  std::unique_ptr<identity::TokenMinter> minter_;
  std::unique_ptr<admin::AuditSink> sink_;
  std::unique_ptr<admin::AdminApi> api_;
  std::unique_ptr<admin::HttpServer> server_;
  std::string host_;
};

struct AdminClientOptions {
  std::string config_file;  // takes admin.address (and its TLS) from it
  std::string admin_url;    // or this; else $GATEHOUSE_ADMIN
  std::string ca_file;      // HTTPS: trust these CAs
};

struct TokenExchangeOptions {
  AdminClientOptions admin;
  std::string subject_token;          // "@FILE" reads it from a file
  std::string actor_token;            // likewise
  std::string actor;                  // a service identity
  std::string scope;                  // groups, space- or comma-separated
  std::vector<std::string> audience;  // connections
  std::string ttl;
  bool json = false;  // print the whole RFC 8693 response
};
int token_exchange(const TokenExchangeOptions&);

struct RevokeOptions {
  AdminClientOptions admin;
  std::string token;  // an admin-group token ("@FILE"); else $GATEHOUSE_TOKEN
  std::string jti;
  std::string subject;
  std::string actor;
  std::string reason;
};
int revoke(const RevokeOptions&);

}  // namespace gh::app
