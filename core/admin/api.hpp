// The admin API: its router with the built-in routes (token exchange, revocations, JWKS, health),
// assembled from configuration. Other control-plane features add their routes to router() before
// the server starts. Sans-I/O: must not depend on the HTTP library or on any protocol.
//
// Built-in routes:
//   POST /oauth/token              public    RFC 8693 token exchange (form body)
//   GET  /.well-known/jwks.json    public    the built-in issuer's public keys
//   GET  /healthz                  public    {"status": "ok"}
//   GET  /admin/revocations        admin     the revocation list
//   POST /admin/revocations        admin     {"kind": "jti"|"subject"|"actor", "value", "reason"}
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "core/admin/audit.hpp"
#include "core/admin/router.hpp"
#include "core/admin/token_exchange.hpp"
#include "core/config.hpp"
#include "core/identity/issuer.hpp"
#include "core/identity/jwt.hpp"
#include "core/identity/revocation.hpp"

namespace gh::admin {

struct ApiDependencies {
  const config::Config* config = nullptr;  // config->admin must be set
  const identity::Validator* validator = nullptr;
  const identity::TokenMinter* minter = nullptr;  // the built-in issuer's key
  identity::RevocationRegistry* revocations = nullptr;
  AuditSink* audit = nullptr;
  std::function<int64_t()> clock_s;  // unix seconds; the wall clock when empty
};

class AdminApi {
 public:
  // Everything in `deps` must outlive the API.
  static Result<std::unique_ptr<AdminApi>> create(ApiDependencies deps);

  // Add routes here before HttpServer::start(); handlers share authenticator() and audit().
  Router& router() { return router_; }
  const Router& router() const { return router_; }
  const Authenticator& authenticator() const { return authenticator_; }
  AuditSink& audit() { return *deps_.audit; }
  const TokenExchange& exchange() const { return exchange_; }

 private:
  AdminApi(ApiDependencies deps, ExchangePolicy policy);
  Result<void> add_builtin_routes();
  Response token(const Request& request) const;
  Response revoke(const Request& request, const Caller& caller) const;
  Response revocations() const;

  ApiDependencies deps_;
  Authenticator authenticator_;
  Router router_;
  TokenExchange exchange_;
};

}  // namespace gh::admin
