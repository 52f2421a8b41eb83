// Who is calling: the subject of a validated token and the RFC 8693 delegation chain behind it.
// Must not depend on protocols, I/O or OpenSSL; filled in by the Validator (jwt.hpp).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace gh::identity {

struct Identity {
  std::string issuer;   // "iss"
  std::string subject;  // "sub"
  // RFC 8693 §4.1 "act" chain, EARLIEST first: back() is the current actor (the outermost "act").
  std::vector<std::string> actors;
  std::vector<std::string> groups;  // from the issuer's groups claim, top level only
  std::string token_id;             // "jti" (may be empty)
  int64_t issued_at = 0;            // unix seconds; 0 when the token has no "iat"
  int64_t not_before = 0;           // 0 when the token has no "nbf"
  int64_t expires_at = 0;
  nlohmann::json claims;  // all top-level claims, for provenance recording

  // {subject, actors...}: who delegated to whom, in order.
  std::vector<std::string> chain() const;
  // "alice → ci-runner → deploy-svc" (U+2192 between spaces).
  std::string chain_string() const;
};

}  // namespace gh::identity
