// Who is calling: the subject of a validated token and the RFC 8693 delegation chain behind it.
// Must not depend on protocols, I/O or OpenSSL; filled in by the Validator (jwt.hpp).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gh::identity {

struct Identity {
  std::string issuer;   // "iss"
  std::string subject;  // "sub"
  // RFC 8693 §4.1 "act" chain, EARLIEST first: back() is the current actor (the outermost "act").
  std::vector<std::string> actors;
  std::vector<std::string> groups;  // from the issuer's groups claim, top level only
  std::string token_id;             // "jti" (may be empty)
  // Tokens minted by token exchange name the tokens they derive from ("gh_lineage", earliest
  // first): revoking any of those revokes this one too. Empty for tokens nobody exchanged.
  std::vector<std::string> lineage;
  // Connections the token is narrowed to ("gh_connections"); nullopt: no narrowing beyond groups.
  std::optional<std::vector<std::string>> connections;
  // CI provenance: the claims the issuer's configuration names (provenance_claims), as text, in
  // configuration order. Recorded on the session; connection access rules may match on them.
  std::vector<std::pair<std::string, std::string>> provenance;
  int64_t issued_at = 0;            // unix seconds; 0 when the token has no "iat"
  int64_t not_before = 0;           // 0 when the token has no "nbf"
  int64_t expires_at = 0;
  nlohmann::json claims;  // all top-level claims, for provenance recording

  // {subject, actors...}: who delegated to whom, in order.
  std::vector<std::string> chain() const;
  // "alice → ci-runner → deploy-svc" (U+2192 between spaces).
  std::string chain_string() const;
  // The value of a provenance claim, or nullptr.
  const std::string* provenance_value(std::string_view name) const;
};

}  // namespace gh::identity
