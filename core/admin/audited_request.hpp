// An admin request that decides something (a revocation, a review decision): its audit entry,
// filled from the caller, and its JSON object body. Every answer goes through answer(), which
// records the entry with its outcome. Sans-I/O.
#pragma once

#include <expected>
#include <nlohmann/json.hpp>
#include <string>

#include "core/admin/audit.hpp"
#include "core/admin/http.hpp"
#include "core/admin/router.hpp"

namespace gh::admin {

class AuditedRequest {
 public:
  // `sink` must outlive this object.
  AuditedRequest(AuditSink& sink, std::string action, const Request& request, const Caller& caller);

  AuditEntry& audit() { return audit_; }
  // Records the entry with this outcome and returns `response`. Best effort: what was decided
  // stands even when the trail cannot take its audit entry (the sessions it affects record it).
  Response answer(int status, std::string outcome, std::string reason, Response response);
  // The body as a JSON object, or the 400 answer refusing it (already recorded).
  std::expected<nlohmann::json, Response> json_body(const Request& request);
  // A string member of a body, or "" when absent or not a string.
  static std::string text(const nlohmann::json& body, const char* name);

 private:
  AuditSink& sink_;
  AuditEntry audit_;
};

}  // namespace gh::admin
