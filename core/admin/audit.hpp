// What the control plane records about each admin request (token exchange, revocation, a refused
// admin caller), and the sink that writes it into the trail. Must not depend on record/ (the
// composition root implements the sink over a recording ring) or on the HTTP library.
#pragma once

#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace gh::admin {

struct AuditEntry {
  std::string action;   // "token_exchange", "revoke", "authenticate", ...
  std::string outcome;  // "granted" | "refused" | "failed"
  int http_status = 0;
  std::string client_address;
  // The identity the request was about, as far as it was established: for a token exchange the
  // chain of the token asked for (subject, actors..., the new actor), else the caller's.
  std::string issuer;
  std::string token_id;
  std::vector<std::string> chain;
  std::vector<std::string> groups;
  std::vector<std::string> lineage;
  std::vector<std::pair<std::string, std::string>> provenance;
  std::string reason;  // the precise reason of a refusal or failure
  // Anything else worth keeping, by name ("issued_jti", "scope", "revoked"...).
  std::vector<std::pair<std::string, std::string>> details;
};

// Thread-safe: handler threads call it concurrently. An entry that cannot be recorded is an
// error; a request whose grant cannot be recorded is answered as a failure (nothing granted
// goes unrecorded).
class AuditSink {
 public:
  virtual ~AuditSink() = default;
  virtual Result<void> record(const AuditEntry& entry) = 0;
};

// A sink that keeps entries in memory (tests, and `recording.enabled: false`).
class MemoryAuditSink final : public AuditSink {
 public:
  Result<void> record(const AuditEntry& entry) override;
  std::vector<AuditEntry> entries() const;

 private:
  mutable std::mutex mutex_;
  std::vector<AuditEntry> entries_;
};

}  // namespace gh::admin
