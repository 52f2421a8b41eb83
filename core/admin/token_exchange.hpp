// RFC 8693 token exchange, as the gateway's token service does it: a caller's token (the subject
// token) and a new actor (an actor token, or a named service identity when policy allows) give a
// gateway-signed token whose "act" nests the new actor over the previous chain, and which can only
// be narrower: groups and connections a subset, exp no later, depth bounded.
// Sans-I/O: form parameters in, a token or an RFC 6749 error out; no HTTP, no clock, no files.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <vector>

#include "core/admin/audit.hpp"
#include "core/admin/http.hpp"
#include "core/config.hpp"
#include "core/identity/issuer.hpp"
#include "core/identity/jwt.hpp"
#include "core/identity/revocation.hpp"

namespace gh::admin {

inline constexpr const char* kTokenExchangeGrant =
    "urn:ietf:params:oauth:grant-type:token-exchange";
inline constexpr const char* kJwtTokenType = "urn:ietf:params:oauth:token-type:jwt";
inline constexpr const char* kAccessTokenType = "urn:ietf:params:oauth:token-type:access_token";

struct ExchangePolicy {
  std::string issuer;    // of minted tokens: identity.builtin.issuer
  std::string audience;  // identity.builtin.audience, so that the gateway accepts them
  int64_t ttl_default_s = 900;
  uint32_t delegation_depth_max = 8;  // identity.delegation_depth_max
  std::vector<config::ServiceActorConfig> service_actors;
  std::vector<std::string> connections;  // the configured connection names ("audience" values)
};

// An RFC 6749 §5.2 / RFC 8693 §2.2.2 error: HTTP 400 with {"error", "error_description"}.
struct ExchangeError {
  std::string error;  // invalid_request, invalid_scope, invalid_target, unsupported_grant_type
  std::string description;  // for the client
  std::string reason;       // precise, for the trail (may name validation details)
};

struct ExchangeIssued {
  identity::IssuedToken token;
  std::vector<std::string> chain;  // subject, actors..., the new actor
  std::vector<std::string> groups;
  std::optional<std::vector<std::string>> connections;
  int64_t expires_in_s = 0;
};

class TokenExchange {
 public:
  // All three must outlive the exchange.
  TokenExchange(const identity::Validator& validator, const identity::TokenMinter& minter,
                ExchangePolicy policy)
      : validator_(validator), minter_(minter), policy_(std::move(policy)) {}

  // `form` holds the POST /oauth/token parameters (RFC 8693 §2.1):
  //   grant_type          the token-exchange URN (required)
  //   subject_token       the caller's own token (required), subject_token_type jwt/access_token
  //   actor_token         the new actor's own token, actor_token_type (both or neither), or
  //   actor               (gatehouse) a service identity of policy.service_actors
  //   scope               space-separated groups, a subset of the subject token's (RFC 6749 §3.3)
  //   audience, resource  connection names (repeatable), a subset of the subject token's
  //   ttl                 (gatehouse) lifetime: 90s, 15m, 2h or seconds; exp may not pass the
  //                       subject's (nor the actor token's)
  //   requested_token_type jwt or access_token when given
  // `audit` is filled as far as the request got, granted or not.
  std::expected<ExchangeIssued, ExchangeError> exchange(const Params& form,
                                                        const identity::RevocationSet& revoked,
                                                        int64_t now_s, AuditEntry& audit) const;

  const ExchangePolicy& policy() const { return policy_; }

 private:
  const identity::Validator& validator_;
  const identity::TokenMinter& minter_;
  ExchangePolicy policy_;
};

// The RFC 8693 §2.2.1 success body.
nlohmann::json exchange_response_body(const ExchangeIssued& issued);

}  // namespace gh::admin
