// Validating caller tokens: compact JWS JWTs from configured issuers, per RFC 7519 and the
// RFC 8725 best current practices, into an Identity with its RFC 8693 delegation chain.
// Must not depend on protocols or on I/O after create() (which reads the JWKS files).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/identity/identity.hpp"
#include "core/identity/limits.hpp"

namespace gh::identity {

struct IssuerConfig {
  std::string name;                     // config label, used in messages ("" = the issuer)
  std::string issuer;                   // exact "iss" to match
  std::vector<std::string> audiences;   // token "aud" (string or array) must contain one of these
  std::string jwks_file;                // JWKS JSON file path
  std::string groups_claim = "groups";  // string array claim (a single string is one group)
  std::vector<std::string> algorithms = {"RS256", "PS256", "ES256", "EdDSA"};  // allow-list
  // Top-level claims recorded as CI provenance (Identity::provenance), e.g. GitHub Actions'
  // repository, repository_id, ref, run_id. Strings, integers and booleans; anything else is
  // refused, as is a value over kProvenanceValueBytesMax.
  std::vector<std::string> provenance_claims;
};

// Private claims of tokens minted by token exchange (core/admin/token_exchange.hpp).
inline constexpr const char* kLineageClaim = "gh_lineage";          // ancestor jtis, earliest first
inline constexpr const char* kConnectionsClaim = "gh_connections";  // connection names

struct ValidatorOptions {
  int64_t clock_skew_s = 60;          // tolerance on exp / nbf / iat, at most kClockSkewSCeiling
  uint32_t delegation_depth_max = 8;  // nested "act" levels; 0 refuses any delegated token
  uint32_t token_bytes_max = 16384;   // whole compact token
};

class Validator {
 public:
  // Loads and checks every issuer's JWKS file. Configuration errors name the issuer, the file and
  // the reason (fail fast at start-up).
  static gh::Result<Validator> create(std::vector<IssuerConfig> issuers, ValidatorOptions options);

  // Thread-safe: const, and no shared mutable state (keys are read-only after create()).
  // The error message is the precise reason, for the audit trail only: the gateway sends every
  // client the same refusal. Quoted token values in it are escaped and cut short.
  gh::Result<Identity> validate(std::string_view token, int64_t now_s) const;

  const ValidatorOptions& options() const;

 private:
  struct State;
  explicit Validator(std::shared_ptr<const State> state);
  std::shared_ptr<const State> state_;  // immutable, so copies of a Validator share it safely
};

// "90s", "15m", "2h", "1d", or plain seconds ("300"). Refuses signs, spaces, other units and
// values that overflow.
gh::Result<int64_t> parse_duration_s(std::string_view text);

}  // namespace gh::identity
